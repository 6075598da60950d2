import { resolveObjectURL } from "node:buffer";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { downloadBlob, downloadUrl, OBJECT_URL_LIFETIME_MS } from "@/app/lib/download";

/** The anchors the helper clicks, as they were at the click. Node's own URL.createObjectURL serves the blobs. */
let clicked: { href: string; download: string }[];
beforeEach(() => {
  clicked = [];
  vi.useFakeTimers();
  vi.stubGlobal("document", {
    createElement: (tag: string) => {
      expect(tag).toBe("a");
      const a = { href: "", download: "", click: () => clicked.push({ href: a.href, download: a.download }) };
      return a;
    },
  });
});
afterEach(() => {
  vi.useRealTimers();
  vi.unstubAllGlobals();
});

describe("download helpers", () => {
  it("downloadUrl clicks a link to the address under the given name", () => {
    downloadUrl("routing-aggregate.csv", "/api/files/abc.csv?share=t");
    expect(clicked).toEqual([{ href: "/api/files/abc.csv?share=t", download: "routing-aggregate.csv" }]);
  });

  it("downloadBlob serves the bytes from an object URL and releases it once the download has had time to start", async () => {
    downloadBlob("trace.json", new Blob(['{"a":1}'], { type: "application/json" }));
    expect(clicked).toHaveLength(1);
    const { href, download } = clicked[0]!;
    expect(download).toBe("trace.json");
    expect(href).toMatch(/^blob:/);
    expect(await resolveObjectURL(href)?.text()).toBe('{"a":1}');
    vi.advanceTimersByTime(OBJECT_URL_LIFETIME_MS - 1);
    expect(resolveObjectURL(href)).toBeDefined();
    vi.advanceTimersByTime(1);
    expect(resolveObjectURL(href)).toBeUndefined();
  });

  it("downloadBlob releases the object URL even when the click throws", () => {
    vi.stubGlobal("document", { createElement: () => ({ click: () => { throw new Error("blocked"); } }) });
    const created = vi.spyOn(URL, "createObjectURL");
    expect(() => downloadBlob("x.bin", new Blob([new Uint8Array(3)]))).toThrow("blocked");
    const href = created.mock.results[0]!.value as string;
    vi.advanceTimersByTime(OBJECT_URL_LIFETIME_MS);
    expect(resolveObjectURL(href)).toBeUndefined();
    created.mockRestore();
  });
});
