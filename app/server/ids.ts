import { randomBytes } from "node:crypto";

/** Short random ids for rows (72 bits; these are not secrets). */
export function newId(): string {
  return randomBytes(9).toString("base64url");
}
