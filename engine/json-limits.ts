/**
 * Bounds on untrusted JSON, checked before the work they bound is done. `jsonTextProblem` reads JSON
 * text once, character by character, counting values and nesting as it goes and stopping at the first
 * limit passed, so a 3-million-element array is refused after the scan reaches its 250,001st element,
 * before JSON.parse builds it. Its counts are exactly those of a walk over the parsed value: one for
 * the top value, one per array element and one per object member (keys are not values).
 */

export interface JsonLimits {
  /** Containers nested deeper than this are refused (the top value is depth 0). */
  maxDepth: number;
  /** Values in all: the top one, every array element and every object member. */
  maxValues: number;
}

export const JSON_LIMITS: Readonly<JsonLimits> = { maxDepth: 64, maxValues: 250_000 };

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const COMMA = 0x2c;
const COLON = 0x3a;

/**
 * What makes JSON text exceed the limits, or null. Malformed text is not reported here (JSON.parse says
 * what is wrong with it); only size and shape. `slackDepth` allows for wrappers around the value that
 * is really limited (tRPC's `{ "0": { "document": … } }`).
 */
export function jsonTextProblem(text: string, limits: JsonLimits = JSON_LIMITS, slackDepth = 0): string | null {
  const maxDepth = limits.maxDepth + slackDepth;
  // Per open container: is it an array, and has it had an element yet.
  const isArray: boolean[] = [];
  const hasElement: boolean[] = [];
  let values = 1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
      continue;
    }
    const top = isArray.length - 1;
    if (top >= 0 && isArray[top] && !hasElement[top] && c !== CLOSE_ARRAY && c > 0x20) {
      hasElement[top] = true;
      values++;
    }
    switch (c) {
      case QUOTE:
        inString = true;
        break;
      case OPEN_ARRAY:
      case OPEN_OBJECT:
        if (isArray.length >= maxDepth) return `it is nested deeper than ${limits.maxDepth} levels`;
        isArray.push(c === OPEN_ARRAY);
        hasElement.push(false);
        break;
      case CLOSE_ARRAY:
      case CLOSE_OBJECT:
        isArray.pop();
        hasElement.pop();
        break;
      case COMMA:
        if (top >= 0 && isArray[top]) values++;
        break;
      case COLON:
        values++;
        break;
    }
    if (values > limits.maxValues) return `it holds more than ${limits.maxValues.toLocaleString("en")} values`;
  }
  return null;
}
