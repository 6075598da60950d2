/** Batched vs unbatched results: what "the same aggregate" means when forwards are padded (runner.ts `batch`). */

/**
 * Compares two aggregate exports: every count (integers) exactly; the float sums (null/shared weight, entropy) within
 * `tol` relative, since a padded forward's expert weights differ from the record's forward alone by float32 rounding.
 * Returns the first difference (or null) and the largest relative difference of the float sums.
 */
export function compareAggregates(a: unknown, b: unknown, tol = 1e-6): { diff: string | null; maxFloatRel: number } {
  let maxFloatRel = 0;
  const walk = (x: unknown, y: unknown, where: string): string | null => {
    if (typeof x === "number" && typeof y === "number") {
      if (Number.isInteger(x) && Number.isInteger(y)) return x === y ? null : `${where}: ${x} vs ${y}`;
      const rel = Math.abs(x - y) / Math.max(1, Math.abs(x), Math.abs(y));
      maxFloatRel = Math.max(maxFloatRel, rel);
      return rel <= tol ? null : `${where}: ${x} vs ${y}`;
    }
    if (Array.isArray(x) && Array.isArray(y)) {
      if (x.length !== y.length) return `${where}: length ${x.length} vs ${y.length}`;
      for (let i = 0; i < x.length; i++) {
        const d = walk(x[i], y[i], `${where}[${i}]`);
        if (d) return d;
      }
      return null;
    }
    if (x && y && typeof x === "object" && typeof y === "object") {
      const kx = Object.keys(x).sort(), ky = Object.keys(y).sort();
      if (kx.join() !== ky.join()) return `${where}: keys ${kx.join()} vs ${ky.join()}`;
      for (const k of kx) {
        const d = walk((x as Record<string, unknown>)[k], (y as Record<string, unknown>)[k], `${where}.${k}`);
        if (d) return d;
      }
      return null;
    }
    return x === y ? null : `${where}: ${JSON.stringify(x)} vs ${JSON.stringify(y)}`;
  };
  const diff = walk(a, b, "aggregate");
  return { diff, maxFloatRel };
}
