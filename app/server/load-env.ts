/**
 * Imported first by every entry point that Next does not start (CLI, worker, `npm run setup`,
 * `npm run models:build`): loads `.env` files exactly as Next does (@next/env: `.env`, `.env.production`,
 * `.env.local`, …; variables already set win), then checks the configuration (engine/config.ts). A bad
 * value stops the process here, naming the variable, before anything reads it.
 */
import { loadEnvConfig } from "@next/env";
import { checkConfigOrExit } from "@/engine/config";

loadEnvConfig(process.cwd(), false, { info: () => {}, error: (...a: unknown[]) => console.error(...a) });
checkConfigOrExit();
