import { ScriptInputError, ScriptOutputError, formatBytes } from "./errors";

/**
 * Inputs go into the sandbox as one JSON text: typed arrays become plain arrays of numbers, anything
 * JSON cannot hold (BigInt, cycles) is an error naming the input, unconnected inputs are left out.
 */
export function inputsToJson(inputs: Record<string, unknown>, maxChars: number): string {
  const parts: string[] = [];
  let total = 2;
  for (const [socket, value] of Object.entries(inputs)) {
    if (value === undefined) continue;
    let json: string | undefined;
    try {
      json = JSON.stringify(value, (_key, v: unknown) => {
        if (typeof v === "bigint") throw new Error("it contains a BigInt, which JSON cannot hold");
        if (ArrayBuffer.isView(v) && !(v instanceof DataView)) {
          if (v instanceof BigInt64Array || v instanceof BigUint64Array) throw new Error("it contains a 64-bit integer array, which JSON cannot hold");
          const arr = v as unknown as ArrayLike<number>;
          if (arr.length * 2 > maxChars) throw new Error(`it holds a ${arr.length}-element numeric array, more than the input size limit allows`);
          return Array.from(arr);
        }
        return v;
      });
    } catch (err) {
      throw new ScriptInputError(socket, (err as Error).message);
    }
    if (json === undefined) continue; // a function or symbol: nothing JSON can carry
    total += JSON.stringify(socket).length + 1 + json.length + 1;
    if (total > maxChars) throw new ScriptInputError(socket, `the inputs are larger than ${formatBytes(maxChars)} as JSON`);
    parts.push(`${JSON.stringify(socket)}:${json}`);
  }
  return `{${parts.join(",")}}`;
}

/**
 * Parses the sandbox's result. `__proto__` keys are dropped: JSON.parse makes them plain own
 * properties, but a later Object.assign or merge on the host would turn them into a prototype.
 */
export function parseOutputJson(json: string): unknown {
  try {
    return JSON.parse(json, (key, value: unknown) => (key === "__proto__" ? undefined : value));
  } catch (err) {
    throw new ScriptOutputError(`it is not valid JSON (${(err as Error).message})`);
  }
}
