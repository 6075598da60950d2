import { describe, expect, it } from "vitest";
import { Lane } from "@/engine/lane";

describe("Lane: heavy work one piece at a time, turns of the event loop between, bounded waiting", () => {
  it("runs pieces in order, one at a time, lets timers run between synchronous pieces, and refuses past maxWaiting", async () => {
    const lane = new Lane(4, () => new Error("busy"));
    const log: string[] = [];
    let running = 0;
    const piece = (name: string) => async () => {
      running++;
      expect(running).toBe(1);
      const until = performance.now() + 20;
      while (performance.now() < until); // 20 ms of synchronous work, as a 15 MB copy's parse is
      log.push(name);
      running--;
      return name;
    };
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    const all = [lane.run(piece("a")), lane.run(piece("b")), lane.run(piece("c")), lane.run(piece("d"))];
    await expect(lane.run(piece("e"))).rejects.toThrow("busy");
    expect(await Promise.all(all)).toEqual(["a", "b", "c", "d"]);
    clearInterval(timer);
    expect(log).toEqual(["a", "b", "c", "d"]);
    expect(ticks).toBeGreaterThanOrEqual(3); // a turn between pieces: the timer ran in between
    // a failed piece does not stop the lane, and the lane takes work again once it drains
    await expect(lane.run(async () => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
    expect(await lane.run(piece("f"))).toBe("f");
  });

  it("work in the lane that asks the lane again runs at once (no waiting for itself); other callers still wait their turn", async () => {
    const lane = new Lane(4, () => new Error("busy"));
    const log: string[] = [];
    const outer = lane.run(async () => {
      log.push("outer");
      const inner = await lane.run(async () => (log.push("inner"), "inner"));
      await new Promise((r) => setTimeout(r, 5));
      log.push("outer done");
      return inner;
    });
    const next = lane.run(async () => (log.push("next"), "next"));
    expect(await Promise.race([outer, new Promise((r) => setTimeout(() => r("deadlock"), 1000))])).toBe("inner");
    expect(await next).toBe("next");
    expect(log).toEqual(["outer", "inner", "outer done", "next"]);
  });

  it("one key (one user) may hold only its share of the waiting places: another key still gets in", async () => {
    const lane = new Lane(6, () => new Error("busy"), 2);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const held = [lane.run(() => gate, "alice"), lane.run(async () => "a2", "alice")];
    await expect(lane.run(async () => "a3", "alice")).rejects.toThrow("busy");
    const bob = [lane.run(async () => "b1", "bob"), lane.run(async () => "b2", "bob")];
    await expect(lane.run(async () => "b3", "bob")).rejects.toThrow("busy");
    release();
    await Promise.all(held);
    expect(await Promise.all(bob)).toEqual(["b1", "b2"]);
    expect(await lane.run(async () => "a4", "alice")).toBe("a4"); // places come back as pieces finish
  });
});
