import type { Metadata } from "next";
import { DocView } from "./DocView";
import { readDocPage } from "./pages";
import "./docs.css";

export const metadata: Metadata = { title: "Documentation · MoE Studio" };

/** /docs: the README, the documentation's front page. */
export default function Page() {
  return <DocView page={readDocPage(null)!} />;
}
