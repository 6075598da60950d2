import RenderBench from "./RenderBench";

/** Measures how long the routing views take to draw a large synthetic trace (used by `npm run bench -- render`). */
export default function Page() {
  return <RenderBench />;
}
