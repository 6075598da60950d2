import { TRPCError } from "@trpc/server";
import { describe, expect, it } from "vitest";
import { freshDataDir } from "../fresh-db";

// A user may hold a bounded number of run event streams open (attack36 B2: 2,000 held streams took 1,778 file
// descriptors, and nothing stopped 20,000).
process.env.STUDIO_DATA_DIR = freshDataDir();
process.env.STUDIO_AUTH = "on";
const { db } = await import("@/app/server/db");
const { createUser } = await import("@/app/server/auth");
const { MAX_EVENT_STREAMS_PER_USER, runEvents } = await import("@/app/server/routers/run");

describe("run event streams per user", () => {
  it(`at most ${MAX_EVENT_STREAMS_PER_USER} open at once per user; closing one frees its place; other users are not affected`, async () => {
    const alice = (await createUser("alice", "alice-password")).id;
    const bob = (await createUser("bob", "bob-password1")).id;
    for (const [id, ownerId] of [["run-a", alice], ["run-b", bob]] as const) await db().run.create({ data: { id, ownerId, status: "finished", document: "{}" } });
    const open = [];
    for (let i = 0; i < MAX_EVENT_STREAMS_PER_USER; i++) {
      const stream = runEvents(alice, "run-a");
      expect((await stream.next()).value).toMatchObject({ type: "finished" }); // open, not yet read to its end
      open.push(stream);
    }
    const refused = runEvents(alice, "run-a").next();
    await expect(refused).rejects.toBeInstanceOf(TRPCError);
    await expect(runEvents(alice, "run-a").next()).rejects.toThrow(`you have ${MAX_EVENT_STREAMS_PER_USER} run event streams open, the most one user may`);
    expect((await runEvents(bob, "run-b").next()).value).toMatchObject({ type: "finished" });
    await open.pop()!.return(undefined); // a closed stream (the client went away)
    const again = runEvents(alice, "run-a");
    expect((await again.next()).value).toMatchObject({ type: "finished" });
    expect((await again.next()).done).toBe(true); // read to its end: closed
    expect((await runEvents(alice, "run-a").next()).done).toBe(false);
    for (const s of open) await s.return(undefined);
  });
});
