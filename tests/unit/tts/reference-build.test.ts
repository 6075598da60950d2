import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, expect, it } from "vitest";
import { ensureTtsReferenceModel } from "@/models/tts/tts-tiny";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "tts-build-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const FILES = ["codec.safetensors", "config.json", "manifest.json", "model.safetensors"];

it("builds once; a dead build's temp folder goes on the next build; a damaged codec or changed config is rebuilt", async () => {
  const parent = path.join(root, "uni-moe-tiny");
  const dir = path.join(parent, "tts");
  expect(await ensureTtsReferenceModel(dir)).toEqual({ dir, built: true });
  expect(fs.readdirSync(dir).sort()).toEqual(FILES);
  const codec = fs.readFileSync(path.join(dir, "codec.safetensors"));
  expect((await ensureTtsReferenceModel(dir)).built).toBe(false);

  const dead = path.join(parent, ".tts.tmp-999999999-abc"); // no such pid
  fs.mkdirSync(dead);
  fs.writeFileSync(path.join(dead, "codec.safetensors"), "partial");
  fs.truncateSync(path.join(dir, "codec.safetensors"), 100);
  expect((await ensureTtsReferenceModel(dir)).built).toBe(true);
  expect(fs.readdirSync(parent)).toEqual(["tts"]);
  expect(fs.readFileSync(path.join(dir, "codec.safetensors")).equals(codec)).toBe(true); // same seeded bytes

  const cfg = path.join(dir, "config.json");
  fs.writeFileSync(cfg, JSON.stringify({ ...JSON.parse(fs.readFileSync(cfg, "utf8")), hidden_size: 65 }));
  expect((await ensureTtsReferenceModel(dir)).built).toBe(true);
  expect(JSON.parse(fs.readFileSync(cfg, "utf8")).hidden_size).toBe(64);
  expect(fs.readdirSync(dir).sort()).toEqual(FILES);
});
