import { z } from "zod";
import { defineValueKind } from "./kind";

/** NUMBER: a number. */
export const number = defineValueKind<number>({
  name: "NUMBER",
  noun: "a number",
  socket: { color: "#94a3b8", description: "A number." },
  schema: z.number(),
  is: (v) => typeof v === "number",
  describe: (value) => ({ type: "number", headline: String(value), value: Number.isFinite(value) ? value : String(value) }),
});
