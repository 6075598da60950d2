import { readFileSync } from "node:fs";
import { resolveEncoder, withEncoder } from "../../models/encoders-tiny";
import { preprocessImage, DEFAULT_GRIDS } from "../../models/image-preprocess";
import { SessionPool } from "../../engine/runtime";
(async () => {
  const pool = new SessionPool({});
  const model = await resolveEncoder("vision", "uni-moe-tiny/vision");
  const { imageSize } = model.info;
  const dir = "app/examples/datasets/sample/images/";
  const files = ["boat.png", "house.png", "moon.png", "tree.png", "ring.png", "cross.png", "stripes.png", "two-dots.png"];
  let t0 = performance.now();
  const pres = [];
  for (const f of files) pres.push(await preprocessImage(readFileSync(dir + f), { grids: [...DEFAULT_GRIDS], tileSize: imageSize, name: f }));
  console.log("preprocess ms", (performance.now() - t0).toFixed(1), "tiles", pres.map((p) => p.tiles.length));
  const tiles = pres.flatMap((p) => p.tiles);
  await withEncoder(model, pool, async (run) => {
    for (let r = 0; r < 4; r++) {
      t0 = performance.now();
      const singles = [];
      for (const t of tiles) singles.push(await run(t, [1, 3, imageSize, imageSize]));
      const one = performance.now() - t0;
      const all = new Float32Array(tiles.length * tiles[0]!.length);
      tiles.forEach((t, i) => all.set(t, i * t.length));
      t0 = performance.now();
      const b = await run(all, [tiles.length, 3, imageSize, imageSize]);
      const batched = performance.now() - t0;
      let d = 0; const n = singles[0]!.data.length;
      singles.forEach((s, i) => { for (let j = 0; j < n; j++) d = Math.max(d, Math.abs(s.data[j]! - b.data[i * n + j]!)); });
      console.log(`tiles ${tiles.length}: one by one ${one.toFixed(1)} ms, batched ${batched.toFixed(1)} ms, max diff ${d.toExponential(2)}`);
    }
  });
  await pool.close();
})();
