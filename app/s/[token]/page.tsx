import { Suspense } from "react";
import SharedView from "./SharedView";

/** /s/<token>: a read-only view of a shared workflow (no login needed). */
export default async function SharedPage({ params }: { params: Promise<{ token: string }> }) {
  const { token } = await params;
  return (
    <Suspense>
      <SharedView token={token} />
    </Suspense>
  );
}
