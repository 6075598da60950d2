import { AsyncLocalStorage } from "node:async_hooks";
import { TRPCError } from "@trpc/server";
import { Lane } from "@/engine/lane";

/**
 * Reading, checking or copying a stored document is synchronous work in proportion to its size (a 15 MB one: 1–2 s),
 * and a request that only names it by id costs a few bytes. So work on a LARGE document (at least this many
 * characters of stored JSON) goes one piece at a time through the `copies` lane, and one request may ask for at most
 * one such piece: eight renames, restores, reads or diffs of big workflows in one batch froze every request 6–12 s.
 */
export const LARGE_DOCUMENT_CHARS = 1 << 20;

/** The lane of work on large documents (and of every duplicate and fork): 16 pieces may wait, 4 of one user's. */
const copies = new Lane(16, () => new TRPCError({ code: "TOO_MANY_REQUESTS", message: "the server is copying many workflows at once; try again in a moment" }), 4);

const requests = new AsyncLocalStorage<{ large: Set<string>; userId: string | null }>();

/** Runs one HTTP request's procedures with their own count of large-document work and their user (the tRPC and REST routes). */
export function withRequestScope<T>(userId: string | null, handle: () => T): T {
  return requests.run({ large: new Set(), userId }, handle);
}

/** Copy work (duplicate, fork, a large document's save) in its turn in the lane, counted against the request's user. */
export function copyTurn<T>(work: () => Promise<T>): Promise<T> {
  return copies.run(work, requests.getStore()?.userId ?? "");
}

/**
 * Work on a stored document of `chars` characters: a small one runs at once; a large one takes its turn in the
 * `copies` lane, and a second large document in the same request is refused (TOO_MANY_REQUESTS, saying why).
 * `document` names it, so that two pieces of work on the same document in one request count once.
 */
export function documentWork<T>(chars: number, work: () => Promise<T>, document?: string): Promise<T> {
  if (chars < LARGE_DOCUMENT_CHARS) return work();
  return copyTurn(async () => {
    claimLargeDocument(document);
    return work();
  });
}

/** Counts one large document against the current request (work outside a request, e.g. the CLI's, is not counted). */
function claimLargeDocument(document: string | undefined): void {
  const scope = requests.getStore();
  if (!scope) return;
  const key = document ?? `#${scope.large.size}`; // unnamed work matches no other
  if (scope.large.has(key)) return;
  if (scope.large.size >= 1) {
    throw new TRPCError({ code: "TOO_MANY_REQUESTS", message: `one call per request may read or copy a workflow over ${LARGE_DOCUMENT_CHARS >> 20} MB; send the others in requests of their own` });
  }
  scope.large.add(key);
}
