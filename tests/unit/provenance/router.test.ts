import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { provenanceRouter } from "@/app/server/routers/provenance";
import { embedWorkflowInPng, embedWorkflowInWav } from "@/engine/provenance";
import { encodeWav16 } from "@/models/io/wav-write";
import { trickyWorkflow } from "./fixtures";

const caller = provenanceRouter.createCaller({ origin: null, host: null, userId: "local" });
const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");

async function png(): Promise<Uint8Array> {
  return new Uint8Array(await sharp({ create: { width: 8, height: 8, channels: 3, background: "#336699" } }).png().toBuffer());
}

describe("provenance.fromMedia", () => {
  it("returns the loaded document and its problems from a PNG and a WAV (data: URLs accepted)", async () => {
    const doc = trickyWorkflow();
    for (const bytes of [embedWorkflowInPng(await png(), doc), embedWorkflowInWav(encodeWav16(new Float32Array(64)), doc)]) {
      const r = await caller.fromMedia({ base64: b64(bytes) });
      expect(r.document.name).toBe(doc.name);
      expect(r.document.nodes.map((n) => n.id)).toEqual(["t1", "p1"]);
      expect(r.document.description).toBe(doc.description);
      expect(Array.isArray(r.problems)).toBe(true);
      const viaUrl = await caller.fromMedia({ base64: `data:application/octet-stream;base64,${b64(bytes)}` });
      expect(viaUrl.document).toEqual(r.document);
    }
  });

  it("BAD_REQUEST for a file without a workflow, a damaged file, a non-media file and bad base64", async () => {
    await expect(caller.fromMedia({ base64: b64(await png()) })).rejects.toMatchObject({ code: "BAD_REQUEST", message: "this PNG carries no MoE Studio workflow" });
    await expect(caller.fromMedia({ base64: b64(encodeWav16(new Float32Array(8))) })).rejects.toMatchObject({ code: "BAD_REQUEST", message: "this WAV carries no MoE Studio workflow" });
    const bad = embedWorkflowInPng(await png(), trickyWorkflow());
    bad[bad.length - 20]! ^= 1;
    await expect(caller.fromMedia({ base64: b64(bad) })).rejects.toMatchObject({ code: "BAD_REQUEST", message: expect.stringMatching(/CRC/) });
    await expect(caller.fromMedia({ base64: b64(new TextEncoder().encode("hello world")) })).rejects.toMatchObject({ code: "BAD_REQUEST", message: "not a PNG or WAV file" });
    await expect(caller.fromMedia({ base64: "!!!" })).rejects.toMatchObject({ code: "BAD_REQUEST" });
    const notAWorkflow = embedWorkflowInPng(await png(), { hello: 1 } as never);
    await expect(caller.fromMedia({ base64: b64(notAWorkflow) })).rejects.toMatchObject({ code: "BAD_REQUEST", message: expect.stringMatching(/embedded workflow cannot be read/) });
  });
});
