/**
 * Runs once when the Next server starts (after Next has loaded the `.env` files): checks the
 * configuration (engine/config.ts), so a bad value stops start-up with a message naming the variable.
 */
export async function register(): Promise<void> {
  if (process.env.NEXT_RUNTIME !== "nodejs") return;
  (await import("./engine/config")).checkConfigOrExit();
}
