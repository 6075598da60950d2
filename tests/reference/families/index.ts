import type { Family } from "../../unit/import/family-checkpoints";
import { referenceDeepseek } from "./deepseek";
import { referenceGptOss } from "./gpt-oss";
import type { Cfg, RefResult, Tensors } from "./ops";
import { referencePhimoe } from "./phimoe";
import { referenceForward } from "./topk-moe";

/** The plain-TS reference forward of a checkpoint of any imported family. */
export function familyReference(family: Family, config: Cfg, t: Tensors, ids: number[]): RefResult {
  if (family === "deepseek_v2" || family === "deepseek_v3") return referenceDeepseek(family, config, t, ids);
  if (family === "phimoe") return referencePhimoe(config, t, ids);
  if (family === "gpt_oss") return referenceGptOss(config, t, ids);
  return referenceForward(family, config, t, ids);
}
