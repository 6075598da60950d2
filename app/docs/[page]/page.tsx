import type { Metadata } from "next";
import { notFound } from "next/navigation";
import { DocView } from "../DocView";
import { readDocPage } from "../pages";
import "../docs.css";

type Props = { params: Promise<{ page: string }> };

export async function generateMetadata({ params }: Props): Promise<Metadata> {
  const doc = readDocPage((await params).page);
  return { title: doc ? `${doc.title} · MoE Studio` : "Not found · MoE Studio" };
}

/** /docs/<name>: docs/<name>.md, for the names docs/ holds only (anything else is a 404). */
export default async function Page({ params }: Props) {
  const doc = readDocPage((await params).page);
  if (!doc) notFound();
  return <DocView page={doc} />;
}
