import { z } from "zod";
import { defineValueKind } from "./kind";

const isNumber = (v: unknown): v is number => typeof v === "number";

/** NUMBER: a number, NaN and ±Infinity included (a metric may be undefined; the preview shows them as text). */
export const number = defineValueKind<number>({
  name: "NUMBER",
  noun: "a number",
  socket: { color: "#94a3b8", description: "A number." },
  // not z.number(), which refuses NaN and ±Infinity
  schema: z.custom<number>(isNumber, { message: "expected a number" }),
  is: isNumber,
  describe: (value) => ({ type: "number", headline: String(value), value: Number.isFinite(value) ? value : String(value) }),
});
