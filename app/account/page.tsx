import type { Metadata } from "next";
import { TokensPage } from "./TokensPage";
import "../models/models.css";

export const metadata: Metadata = { title: "Account · MoE Studio" };

export default function Page() {
  return <TokensPage />;
}
