import type { Metadata } from "next";
import { ModelsPage } from "./ModelsPage";
import "./models.css";

export const metadata: Metadata = { title: "Models · MoE Studio" };

export default function Page() {
  return <ModelsPage />;
}
