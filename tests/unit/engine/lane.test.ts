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
});
