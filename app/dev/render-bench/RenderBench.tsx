"use client";
import dynamic from "next/dynamic";

const Bench = dynamic(() => import("./Bench"), { ssr: false });

export default function RenderBench() {
  return <Bench />;
}
