import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, expect, it } from "vitest";
import { ensureEncoderModel } from "@/models/encoders/encoders-tiny";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "encoder-build-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

it("the next build removes the temp folder of an interrupted build whose process is gone, and leaves a running one's", async () => {
  const parent = path.join(root, "uni-moe-tiny");
  const dir = path.join(parent, "audio");
  fs.mkdirSync(parent, { recursive: true });
  const dead = path.join(parent, ".audio.tmp-999999999-abc"); // no such pid
  fs.mkdirSync(dead);
  fs.writeFileSync(path.join(dead, "model.safetensors"), "partial");
  const running = path.join(parent, `.audio.tmp-${process.pid}-xyz`); // this process is alive
  fs.mkdirSync(running);
  const other = path.join(parent, ".vision.tmp-999999999-abc"); // another model's: not this build's business
  fs.mkdirSync(other);

  const r = await ensureEncoderModel("audio", dir);
  expect(r.built).toBe(true);
  expect(fs.readdirSync(parent).sort()).toEqual([".audio.tmp-" + process.pid + "-xyz", ".vision.tmp-999999999-abc", "audio"].sort());
  expect(fs.existsSync(path.join(dir, "manifest.json"))).toBe(true);
});
