import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { beforeAll, describe, expect, it } from "vitest";
import { fingerprintDataset, readRows, resolveDatasetSource, resolveRecord, scanDataset, type RowResult } from "../../../engine/batch/dataset";
import { hashValue } from "../../../engine/hash";
import { DiskStorage } from "../../../engine/storage";

const dir = mkdtempSync(path.join(os.tmpdir(), "dataset-test-"));
let png: Buffer;

async function rows(source: string): Promise<RowResult[]> {
  const out: RowResult[] = [];
  for await (const r of readRows(source)) out.push(r);
  return out;
}

beforeAll(async () => {
  png = await sharp({ create: { width: 8, height: 8, channels: 3, background: "#ff0000" } }).png().toBuffer();
  mkdirSync(path.join(dir, "img"), { recursive: true });
  writeFileSync(path.join(dir, "img", "a.png"), png);
  writeFileSync(path.join(dir, "img", "fake.png"), "not an image");
});

describe("JSONL datasets", () => {
  it("reads records, reports each bad row with its line and skips it", async () => {
    const file = path.join(dir, "d.jsonl");
    writeFileSync(
      file,
      [
        '{"text": "hello", "task": "greet", "label": 3}',
        "",
        "{not json",
        '{"prompt": "look", "image": "img/a.png", "task": "see"}',
        '{"text": "", "task": "x"}',
        '{"text": "escape", "image": "../etc/passwd"}',
        '{"text": "abs", "image": "/etc/passwd"}',
        '{"text": "missing", "image": "img/nope.png"}',
        '{"text": ["list"]}',
        "[1, 2]",
        '{"text": "a", "prompt": "b"}',
        '{"text": "last", "id": "r9"}',
      ].join("\n"),
    );
    const r = await rows(file);
    const ok = r.filter((x) => x.ok).map((x) => (x as { record: { id: string; text: string; task: string; label: string; line: number } }).record);
    expect(ok.map((x) => [x.id, x.text, x.task, x.label, x.line])).toEqual([
      ["1", "hello", "greet", "3", 1],
      ["3", "look", "see", "", 4],
      ["r9", "last", "", "", 12],
    ]);
    const errs = r.filter((x) => !x.ok).map((x) => (x as { error: { line: number; message: string } }).error);
    expect(errs.map((e) => e.line)).toEqual([3, 5, 6, 7, 8, 9, 10, 11]);
    expect(errs[0]!.message).toMatch(/line 3: not JSON/);
    expect(errs[1]!.message).toMatch(/no text and no media/);
    expect(errs[2]!.message).toMatch(/outside the dataset's folder/);
    expect(errs[3]!.message).toMatch(/must be relative/);
    expect(errs[4]!.message).toMatch(/img\/nope.png" does not exist/);
    expect(errs[5]!.message).toMatch(/"text" must be text, got a list/);
    expect(errs[6]!.message).toMatch(/expected an object/);
    expect(errs[7]!.message).toMatch(/not both/);
    const scan = await scanDataset(file);
    expect([scan.count, scan.errorCount, scan.errors.length]).toEqual([3, 8, 8]);
    expect(scan.tasks).toEqual({ greet: 1, see: 1, "": 1 });
    expect(scan.modalities).toEqual({ text: 3, image: 1 });
    expect(scan.preview[1]!.media).toEqual({ image: "img/a.png" });
  });

  it("an answer column (JSONL and CSV) is the record's reference answer; a non-text answer is a row error", async () => {
    const jsonl = path.join(dir, "answers.jsonl");
    writeFileSync(jsonl, ['{"text": "2+2?", "answer": "4", "task": "math"}', '{"text": "no answer"}', '{"text": "x", "answer": {"a": 1}}'].join("\n"));
    const r = await rows(jsonl);
    const ok = r.filter((x) => x.ok).map((x) => (x as { record: { answer: string } }).record.answer);
    expect(ok).toEqual(["4", ""]);
    expect((r[2] as { error: { message: string } }).error.message).toMatch(/"answer" must be text/);
    const csv = path.join(dir, "answers.csv");
    writeFileSync(csv, 'text,answer\n"Say hi, please",hi there\n');
    const c = await rows(csv);
    expect((c[0] as { record: { text: string; answer: string } }).record).toMatchObject({ text: "Say hi, please", answer: "hi there" });
    expect((await scanDataset(jsonl)).preview.map((p) => p.answer)).toEqual(["4", undefined]);
  });

  it("a symlink inside the folder that leads outside it is refused", async () => {
    const outside = mkdtempSync(path.join(os.tmpdir(), "dataset-outside-"));
    writeFileSync(path.join(outside, "secret.png"), png);
    symlinkSync(path.join(outside, "secret.png"), path.join(dir, "img", "link.png"));
    const file = path.join(dir, "link.jsonl");
    writeFileSync(file, '{"text": "x", "image": "img/link.png"}\n');
    const [r] = await rows(file);
    expect(r!.ok).toBe(false);
    expect((r as { error: { message: string } }).error.message).toMatch(/outside the dataset's folder: a symbolic link leads out of it/);
  });

  it("the fingerprint follows the bytes", async () => {
    const f = path.join(dir, "fp.jsonl");
    writeFileSync(f, '{"text": "a"}\n');
    const a = await fingerprintDataset(f);
    writeFileSync(f, '{"text": "a"}\n{"text": "b"}\n');
    expect(await fingerprintDataset(f)).not.toBe(a);
  });
});

describe("CSV datasets", () => {
  it("handles quotes, embedded commas, quotes and newlines; reports wrong field counts", async () => {
    const file = path.join(dir, "d.csv");
    writeFileSync(file, 'text,task,image\n"Hello, world",greet,\n"She said ""hi""\nand left",story,img/a.png\nonly-one-field\nplain,t2,\n"bad"x,t,\n');
    const r = await rows(file);
    const ok = r.filter((x) => x.ok).map((x) => (x as { record: { text: string; task: string; media: { image?: string } } }).record);
    expect(ok.map((x) => [x.text, x.task, !!x.media.image])).toEqual([
      ["Hello, world", "greet", false],
      ['She said "hi"\nand left', "story", true],
      ["plain", "t2", false],
    ]);
    const errs = r.filter((x) => !x.ok).map((x) => (x as { error: { line: number; message: string } }).error);
    expect(errs.map((e) => e.line)).toEqual([5, 7]);
    expect(errs[0]!.message).toMatch(/1 fields, the header has 3/);
    expect(errs[1]!.message).toMatch(/after a closing quote/);
  });

  it("a header without a text or media column is an error for the whole file", async () => {
    const file = path.join(dir, "bad.csv");
    writeFileSync(file, "a,b\n1,2\n");
    await expect(scanDataset(file)).rejects.toThrow(/header row needs a text/);
  });
});

describe("folder datasets", () => {
  it("pairs files by stem, takes the task from the subfolder, reports unknown files", async () => {
    const root = path.join(dir, "folder");
    mkdirSync(path.join(root, "caption"), { recursive: true });
    mkdirSync(path.join(root, "math"), { recursive: true });
    writeFileSync(path.join(root, "caption", "q1.txt"), "  Describe it. ");
    writeFileSync(path.join(root, "caption", "q1.png"), png);
    writeFileSync(path.join(root, "caption", "q2.png"), png);
    writeFileSync(path.join(root, "math", "m1.txt"), "1+1?");
    writeFileSync(path.join(root, "math", "notes.docx"), "x");
    writeFileSync(path.join(root, "top.txt"), "no task");
    const r = await rows(root);
    const ok = r.filter((x) => x.ok).map((x) => (x as { record: { id: string; text: string; task: string; media: { image?: string } } }).record);
    expect(ok.map((x) => [x.id, x.text, x.task, !!x.media.image])).toEqual([
      ["caption/q1", "Describe it.", "caption", true],
      ["caption/q2", "", "caption", true],
      ["math/m1", "1+1?", "math", false],
      ["top", "no task", "", false],
    ]);
    const errs = r.filter((x) => !x.ok);
    expect(errs).toHaveLength(1);
    expect((errs[0] as { error: { message: string } }).error.message).toMatch(/notes.docx is not a dataset file/);
  });

  it("symbolic links and deeper folders are not read, and are reported as row errors after the records", async () => {
    const root = path.join(dir, "folder-links");
    mkdirSync(path.join(root, "caption", "deeper"), { recursive: true });
    writeFileSync(path.join(root, "caption", "q1.txt"), "one");
    writeFileSync(path.join(root, "caption", "deeper", "q2.txt"), "two");
    const outside = mkdtempSync(path.join(os.tmpdir(), "dataset-outside-"));
    writeFileSync(path.join(outside, "secret.txt"), "secret");
    symlinkSync(path.join(outside, "secret.txt"), path.join(root, "caption", "q3.txt"));
    symlinkSync(outside, path.join(root, "linked"));
    const r = await rows(root);
    expect(r.filter((x) => x.ok).map((x) => (x as { record: { id: string; index: number } }).record)).toMatchObject([{ id: "caption/q1", index: 0 }]);
    const errs = r.filter((x) => !x.ok).map((x) => (x as { error: { index: number; message: string } }).error);
    expect(errs.map((e) => [e.index, e.message.split(":")[0]])).toEqual([[1, "caption/deeper"], [2, "caption/q3.txt"], [3, "linked"]]);
    expect(errs[0]!.message).toMatch(/not read/);
    expect(JSON.stringify(r)).not.toContain("secret");
    const scan = await scanDataset(root);
    expect([scan.count, scan.errorCount]).toEqual([1, 3]);
  });
});

describe("resolving records and sources", () => {
  it("stores media content-addressed; the record hash follows text, task and media bytes; bad media names the record", async () => {
    const storage = new DiskStorage(path.join(dir, "files"));
    const base = { index: 0, line: 1, id: "r1", text: "t", task: "a", label: "", answer: "", media: { image: path.join(dir, "img", "a.png") } };
    const a = await resolveRecord(base, storage);
    expect(a.image).toMatchObject({ kind: "image", width: 8, height: 8, mime: "image/png" });
    expect(await storage.exists(a.image!.file)).toBe(true);
    expect((await resolveRecord({ ...base, id: "other", index: 5 }, storage)).hash).toBe(a.hash);
    expect((await resolveRecord({ ...base, task: "b" }, storage)).hash).not.toBe(a.hash);
    expect((await resolveRecord({ ...base, text: "u" }, storage)).hash).not.toBe(a.hash);
    // An answer is hashed when there is one; without one the hash is the one records had before answers existed.
    expect((await resolveRecord({ ...base, answer: "42" }, storage)).hash).not.toBe(a.hash);
    expect(a.hash).toBe(hashValue({ text: "t", task: "a", label: "", image: a.image!.file, audio: null, video: null }));
    await expect(resolveRecord({ ...base, media: { image: path.join(dir, "img", "fake.png") } }, storage)).rejects.toThrow(/record r1: .*fake.png/);
  });

  it("dataset sources stay inside their roots", () => {
    const roots = { examples: "/srv/ex", user: "/srv/data/datasets" };
    expect(resolveDatasetSource("examples/sample/records.jsonl", roots)).toBe("/srv/ex/sample/records.jsonl");
    expect(resolveDatasetSource("mine/a.csv", roots)).toBe("/srv/data/datasets/mine/a.csv");
    expect(() => resolveDatasetSource("../secrets.jsonl", roots)).toThrow(/outside/);
    expect(() => resolveDatasetSource("examples/../../x.jsonl", roots)).toThrow(/outside/);
    expect(() => resolveDatasetSource("/etc/passwd", roots)).toThrow(/relative/);
    expect(() => resolveDatasetSource(" ", roots)).toThrow(/choose a dataset/);
  });
});
