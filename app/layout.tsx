import type { Metadata } from "next";
import localFont from "next/font/local";
import type { ReactNode } from "react";
import "@xyflow/react/dist/style.css";
import "./globals.css";
import { AccountBar } from "./AccountBar";
import { Providers } from "./providers";

// Bundled font file: nothing is fetched from the internet at build or run time.
const inter = localFont({ src: "./fonts/inter-latin-wght-normal.woff2", variable: "--font-inter", display: "swap" });

export const metadata: Metadata = {
  title: "MoE Studio",
  description: "Build, run and inspect omnimodal Mixture-of-Experts pipelines",
};

export default function RootLayout({ children }: { children: ReactNode }) {
  return (
    <html lang="en" className={inter.variable}>
      <body>
        <Providers>{children}</Providers>
        <AccountBar />
      </body>
    </html>
  );
}
