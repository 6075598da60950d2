import { describe, expect, it } from "vitest";
import { decodeWavMono, parseWav } from "@/engine/media/wav";
import { embedWorkflowInWav, ProvenanceError, readWorkflowFromMedia, readWorkflowFromWav, sniffMedia, WAV_INFO_NOTE } from "@/engine/provenance";
import { encodeWav16 } from "@/models/io/wav-write";
import { trickyWorkflow } from "./fixtures";

function tone(n = 2401): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => 0.6 * Math.sin(i / 7));
}

/** Top-level RIFF chunks: [id, body offset, size]. */
function chunks(wav: Uint8Array): [string, number, number][] {
  const v = new DataView(wav.buffer, wav.byteOffset, wav.byteLength);
  const out: [string, number, number][] = [];
  for (let at = 12; at + 8 <= wav.length; ) {
    const size = v.getUint32(at + 4, true);
    out.push([String.fromCharCode(...wav.subarray(at, at + 4)), at + 8, size]);
    at += 8 + size + (size & 1);
  }
  return out;
}

const text = (b: Uint8Array) => new TextDecoder().decode(b);

describe("WAV provenance (iXML + LIST/INFO)", () => {
  it("round-trips a document; parseWav/decodeWavMono decode the file identically", () => {
    const wav = encodeWav16(tone(), { sampleRate: 24000 });
    const doc = trickyWorkflow();
    const out = embedWorkflowInWav(wav, doc);
    expect(readWorkflowFromWav(out)).toEqual(doc);
    expect(readWorkflowFromMedia(out)).toEqual(doc);
    expect(sniffMedia(out)).toBe("wav");
    expect(readWorkflowFromWav(wav)).toBeNull();

    expect({ ...parseWav(out), dataOffset: 0 }).toEqual({ ...parseWav(wav), dataOffset: 0 }); // the metadata sits before the samples
    const a = decodeWavMono(wav);
    const b = decodeWavMono(out);
    expect({ ...b.info, dataOffset: 0 }).toEqual({ ...a.info, dataOffset: 0 });
    expect(Buffer.compare(Buffer.from(b.samples.buffer), Buffer.from(a.samples.buffer))).toBe(0);

    // RIFF size, even padding, chunk order, and the input is untouched
    const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
    expect(v.getUint32(4, true)).toBe(out.length - 8);
    expect(out.length % 2).toBe(0);
    const list = chunks(out);
    expect(list.map((c) => c[0])).toEqual(["fmt ", "iXML", "LIST", "data"]);
    // The samples are unchanged, now after the metadata.
    expect(Buffer.compare(Buffer.from(out.subarray(out.length - (wav.length - 36))), Buffer.from(wav.subarray(36)))).toBe(0);

    const [, ixAt, ixSize] = list[1]!;
    const xml = text(out.subarray(ixAt, ixAt + ixSize));
    expect(xml).toMatch(/^<\?xml version="1.0" encoding="UTF-8"\?>\n<BWFXML><MOE_STUDIO_WORKFLOW><!\[CDATA\[\{/);
    expect(xml.trimEnd().endsWith("]]></MOE_STUDIO_WORKFLOW></BWFXML>")).toBe(true);
    expect(xml).toContain("]]]]><![CDATA[>"); // "]]>" split across two CDATA sections
    // every "]]>" in the chunk is a real CDATA end: the JSON text with sections re-joined is the document
    const joined = xml.slice(xml.indexOf("<![CDATA[") + 9, xml.lastIndexOf("]]>")).split("]]><![CDATA[").join("");
    expect(JSON.parse(joined)).toEqual(doc);
    expect(xml).not.toMatch(/[\ufffe\uffff]/);

    const [, liAt, liSize] = list[2]!;
    const info = out.subarray(liAt, liAt + liSize);
    expect(text(info.subarray(0, 8))).toBe("INFOICMT");
    expect(text(info.subarray(12))).toBe(`${WAV_INFO_NOTE}\0`);
  });

  it("pads an odd-sized iXML chunk and keeps the file readable", () => {
    const wav = encodeWav16(tone(100));
    for (const name of ["a", "ab"]) {
      const out = embedWorkflowInWav(wav, trickyWorkflow(name));
      const ix = chunks(out).find((c) => c[0] === "iXML")!;
      if (ix[2] % 2 === 1) expect(out[ix[1] + ix[2]]).toBe(0);
      expect((readWorkflowFromWav(out) as { name: string }).name).toBe(name);
      expect(parseWav(out).frames).toBe(100);
    }
  });

  it("embedding again replaces the workflow; one iXML and one INFO comment", () => {
    const once = embedWorkflowInWav(encodeWav16(tone()), trickyWorkflow("first"));
    const twice = embedWorkflowInWav(once, trickyWorkflow("second"));
    expect(chunks(twice).map((c) => c[0])).toEqual(["fmt ", "iXML", "LIST", "data"]);
    expect((readWorkflowFromWav(twice) as { name: string }).name).toBe("second");
    expect(text(twice).split(WAV_INFO_NOTE)).toHaveLength(2);
  });

  it("keeps a foreign iXML and INFO comment, adding our element inside <BWFXML>", () => {
    const wav = encodeWav16(tone(10));
    const chunk = (id: string, body: Uint8Array) => {
      const c = new Uint8Array(8 + body.length + (body.length & 1));
      c.set(new TextEncoder().encode(id));
      new DataView(c.buffer).setUint32(4, body.length, true);
      c.set(body, 8);
      return c;
    };
    const foreign = new TextEncoder().encode("<?xml version=\"1.0\"?><BWFXML><PROJECT>take 3</PROJECT></BWFXML>");
    const comment = new TextEncoder().encode("INFOICMT\x05\0\0\0mine\0\0");
    const body = [...wav.subarray(12), ...chunk("iXML", foreign), ...chunk("LIST", comment)];
    const src = new Uint8Array(12 + body.length);
    src.set(wav.subarray(0, 12));
    src.set(body, 12);
    new DataView(src.buffer).setUint32(4, src.length - 8, true);
    expect(readWorkflowFromWav(src)).toBeNull();

    const out = embedWorkflowInWav(src, trickyWorkflow("merged"));
    expect(chunks(out).map((c) => c[0])).toEqual(["fmt ", "data", "iXML", "LIST"]);
    expect(text(out)).toContain("<PROJECT>take 3</PROJECT><MOE_STUDIO_WORKFLOW><![CDATA[");
    expect(text(out)).toContain("ICMT\x05\0\0\0mine");
    expect(text(out)).not.toContain(WAV_INFO_NOTE); // the user's comment is kept, not replaced
    expect((readWorkflowFromWav(out) as { name: string }).name).toBe("merged");
    expect(decodeWavMono(out).samples).toEqual(decodeWavMono(wav).samples);
  });

  it("absent metadata → null; damaged files → clear errors", () => {
    const wav = encodeWav16(tone(50));
    expect(readWorkflowFromWav(wav)).toBeNull();
    expect(readWorkflowFromMedia(wav)).toBeNull();
    expect(() => readWorkflowFromWav(new Uint8Array(20))).toThrow(ProvenanceError);
    expect(() => readWorkflowFromWav(new Uint8Array(20))).toThrow(/not a WAV file/);

    const out = embedWorkflowInWav(wav, trickyWorkflow());
    // truncated inside the iXML chunk
    const cut = out.slice(0, out.length - 200);
    expect(() => readWorkflowFromWav(cut)).toThrow(/corrupt WAV: the "iXML" chunk runs past the end/);
    // the JSON damaged inside the CDATA
    const ix = chunks(out).find((c) => c[0] === "iXML")!;
    const bad = out.slice();
    bad[Buffer.from(out).indexOf("<![CDATA[{") + 9] = 0x78; // "{" → "x"
    expect(() => readWorkflowFromWav(bad)).toThrow(/not valid JSON/);
    // the closing tag lost
    const noClose = out.slice();
    const closeAt = Buffer.from(out).lastIndexOf("</MOE_STUDIO_WORKFLOW>");
    noClose[closeAt + 2] = 0x58;
    expect(() => readWorkflowFromWav(noClose)).toThrow(/not closed/);
  });
});
