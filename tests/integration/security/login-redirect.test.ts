import { describe, expect, it } from "vitest";
import { safeNext } from "@/app/server/current-user";

// /login?next=… sends the browser on after logging in: only ever to a path of this origin.
describe("safeNext (the login page's redirect target)", () => {
  const ORIGIN = "http://127.0.0.1:3000";

  it("keeps same-origin paths, with their query and fragment", () => {
    expect(safeNext("/w/abc?tab=json#n1")).toBe("/w/abc?tab=json#n1");
    expect(safeNext("/s/tok123?fork=1")).toBe("/s/tok123?fork=1");
    expect(safeNext("/")).toBe("/");
  });

  it("refuses anything a browser would resolve to another origin (tabs, newlines, backslashes, dot segments)", () => {
    const attacks = [
      "/\t/evil.test", // the reported one: /login?next=%2F%09%2Fevil.test
      "/\n/evil.test",
      "/\r\n/evil.test",
      "\t//evil.test",
      "//evil.test",
      "/\\evil.test",
      "\\\\evil.test",
      "/.//evil.test",
      "/../..//evil.test",
      "https://evil.test/",
      "javascript:alert(1)",
      "http:evil.test",
      " //evil.test",
    ];
    for (const next of attacks) {
      const target = safeNext(next);
      // What the browser does with the Location it is given:
      expect(new URL(target, ORIGIN).origin, JSON.stringify(next)).toBe(ORIGIN);
      expect(target.startsWith("//"), JSON.stringify(next)).toBe(false);
    }
  });

  it("never loops back to /login, and non-strings or huge values go home", () => {
    expect(safeNext("/login?next=/w/x")).toBe("/");
    expect(safeNext(undefined)).toBe("/");
    expect(safeNext(["/w/x"])).toBe("/");
    expect(safeNext(`/${"a".repeat(3000)}`)).toBe("/");
  });
});
