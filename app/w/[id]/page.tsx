import { Suspense } from "react";
import EditorPage from "@/app/editor/Editor";

export default async function WorkflowPage({ params }: { params: Promise<{ id: string }> }) {
  const { id } = await params;
  return (
    <Suspense>
      <EditorPage id={id} />
    </Suspense>
  );
}
