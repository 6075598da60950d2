import { realpathSync } from "node:fs";
import path from "node:path";

export class PathEscapeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PathEscapeError";
  }
}

/** The real path of `p`, or of its deepest existing ancestor joined with the rest (for files not created yet). */
function realpathOrAncestor(p: string): string {
  const missing: string[] = [];
  let at = p;
  for (;;) {
    try {
      return path.join(realpathSync(at), ...missing.reverse());
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "ENOENT" && code !== "ENOTDIR") throw err;
      const parent = path.dirname(at);
      if (parent === at) return p;
      missing.push(path.basename(at));
      at = parent;
    }
  }
}

/**
 * Resolves a relative path that came from a request or a workflow param inside `base`, refusing
 * what could reach anything else: absolute paths, `..` segments, NUL bytes, and symlinks (anywhere
 * along the path) that lead outside `base`. `what` and `dirName` name the parameter and the directory
 * in the error ("model \"../x\" is outside the models directory: ...").
 */
export function resolveInside(base: string, rel: string, what = "path", dirName = "its directory"): string {
  const refuse = (why: string) => new PathEscapeError(`${what} "${String(rel).slice(0, 200)}" is outside ${dirName}: ${why}`);
  if (typeof rel !== "string" || rel.length === 0) throw new PathEscapeError(`${what} is empty`);
  if (rel.length > 1024) throw new PathEscapeError(`${what} is longer than 1024 characters`);
  if (rel.includes("\0")) throw refuse("it contains a NUL byte");
  if (path.isAbsolute(rel) || path.win32.isAbsolute(rel)) throw refuse("give a path relative to it, not an absolute one");
  if (rel.split(/[\\/]/).includes("..")) throw refuse('".." is not allowed');
  const root = path.resolve(base);
  const lexical = path.resolve(root, rel);
  if (lexical !== root && !lexical.startsWith(root + path.sep)) throw refuse("it resolves elsewhere");
  const realRoot = realpathOrAncestor(root);
  const real = realpathOrAncestor(lexical);
  if (real !== realRoot && !real.startsWith(realRoot + path.sep)) throw refuse("a symbolic link leads out of it");
  return lexical;
}
