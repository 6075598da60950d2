import { z } from "zod";
import { defineValueKind } from "./kind";

/** ANY: accepts anything; only valid on inputs (e.g. Preview). */
export const any = defineValueKind<unknown>({
  name: "ANY",
  noun: "a value",
  socket: { color: "#ffffff", description: "Any value." },
  schema: z.unknown(),
  is: () => true,
});
