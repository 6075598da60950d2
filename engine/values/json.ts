import { z } from "zod";
import { defineValueKind } from "./kind";

/** JSON: a small JSON value; report kinds (compare-report, …) travel on it, named by their output spec's `kind`. */
export const json = defineValueKind<unknown>({
  name: "JSON",
  noun: "a JSON value",
  socket: { color: "#cbd5e1", description: "A small JSON value." },
  schema: z.unknown(),
  is: () => true,
});
