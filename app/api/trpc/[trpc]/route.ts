import { fetchRequestHandler } from "@trpc/server/adapters/fetch";
import { appRouter } from "@/app/server/routers";
import { checkOrigin } from "@/app/server/origin";

export const runtime = "nodejs";
export const dynamic = "force-dynamic";

function handler(req: Request) {
  const refused = checkOrigin(req);
  if (refused) return refused;
  return fetchRequestHandler({
    endpoint: "/api/trpc",
    req,
    router: appRouter,
    createContext: () => ({ origin: req.headers.get("origin"), host: req.headers.get("host"), userId: "local" }),
    onError({ error, path }) {
      if (error.code === "INTERNAL_SERVER_ERROR") console.error(`tRPC ${path}:`, error);
    },
  });
}

export { handler as GET, handler as POST };
