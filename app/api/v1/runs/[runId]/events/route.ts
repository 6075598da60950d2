import { apiCaller, errorResponse } from "@/app/server/api-http";
import { runEvents } from "@/app/server/routers/run";

export const runtime = "nodejs";
export const dynamic = "force-dynamic";

/** GET /api/v1/runs/{runId}/events: the run's events as Server-Sent Events, ending with its terminal event. */
export async function GET(req: Request, { params }: { params: Promise<{ runId: string }> }): Promise<Response> {
  const caller = await apiCaller(req);
  if (caller instanceof Response) return caller;
  const { runId } = await params;
  const events = runEvents(caller.userId, runId, req.signal);
  let first: IteratorResult<unknown>;
  try {
    first = await events.next(); // a missing run answers 404 before the stream starts
  } catch (err) {
    return errorResponse(err);
  }
  const encoder = new TextEncoder();
  const frame = (e: unknown) => encoder.encode(`data: ${JSON.stringify(e)}\n\n`);
  const stream = new ReadableStream<Uint8Array>({
    async start(controller) {
      try {
        if (!first.done) controller.enqueue(frame(first.value));
        for await (const e of events) controller.enqueue(frame(e));
      } catch (err) {
        controller.enqueue(encoder.encode(`event: error\ndata: ${JSON.stringify({ message: (err as Error).message })}\n\n`));
      } finally {
        controller.close();
      }
    },
    async cancel() {
      await events.return(undefined);
    },
  });
  return new Response(stream, { headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache, no-transform", "x-accel-buffering": "no" } });
}
