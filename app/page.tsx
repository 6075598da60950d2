import { WorkflowList } from "./workflow-list";

export default function Home() {
  return <WorkflowList />;
}
