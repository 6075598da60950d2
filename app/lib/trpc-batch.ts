/**
 * Procedures one tRPC request may batch: the client (app/providers.tsx) sends at most this many, the route
 * (app/api/trpc) refuses more. Each answer can be large (a 16 MB document, twice in a history diff) and a batch
 * answers them all at once: without a cap, one GET URL held 150 history diffs.
 */
export const MAX_BATCH = 8;
