import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { expect, test } from "@playwright/test";
import { addNode, drag, newWorkflow } from "./helpers";
import { writeOmniSpeechCheckpoint } from "../unit/tts/omni-speech";
import { lightningCheckpoint, writeTorchCheckpoint } from "../unit/tts/torch-ckpt-writer";
import { seedWavWeights, smallWavConfig } from "../unit/tts/wavtokenizer-reference";

const SHOTS = "test-results/screens";
const PORT = Number(process.env.E2E_PORT ?? 3100);
const CHECKPOINTS = path.resolve(`test-results/e2e-data-${PORT}/checkpoints`);

test("released MoE-TTS: import a generated Omni checkpoint with a speech generator and a WavTokenizer, text → MoE-LLM → MoE-TTS (release mode) → a WAV, its routing with capacity drops", async ({ page }) => {
  test.setTimeout(240_000);
  await writeOmniSpeechCheckpoint(path.join(CHECKPOINTS, "omni-speech"));
  const codecDir = path.join(CHECKPOINTS, "speech_gen");
  mkdirSync(codecDir, { recursive: true });
  // 40 codes/s as the release's codec (hop 100 at 4 kHz here, 600 at 24 kHz there), in the Lightning .ckpt layout
  writeTorchCheckpoint(path.join(codecDir, "wavtokenizer_large_unify_600_24k.ckpt"), lightningCheckpoint(seedWavWeights(smallWavConfig({ n_fft: 400, hop_length: 100 }), 5)), "wavtokenizer_large_unify_600_24k");
  writeFileSync(path.join(codecDir, "wavtokenizer_smalldata_frame40_3s_nq1_code4096_dim512_kmeans200_attn.yaml"), "model:\n  init_args:\n    sample_rate: 4000\n    head:\n      init_args: { dim: 64, n_fft: 400, hop_length: 100, padding: same }\n");

  await page.goto("/models");
  await page.getByLabel("Checkpoint folder").selectOption("checkpoints/omni-speech");
  await expect(page.getByTestId("inspect-summary")).toContainText("+ MoE-TTS (speech_generator.*, 2 layers");
  await expect(page.getByTestId("inspect-summary")).not.toContainText("Unclaimed");
  await page.getByLabel("Model name").fill("e2e-omni");
  await page.getByRole("button", { name: "Import", exact: true }).click();
  await expect(page.getByTestId("import-status")).toContainText("Imported: grin_qwen2_vl/e2e-omni", { timeout: 90_000 });
  // every folder, a codec folder too, is named by its import folder: never the server's path
  await expect(page.getByLabel("Checkpoint folder")).not.toContainText(CHECKPOINTS);
  await page.getByLabel("Checkpoint folder").selectOption("checkpoints/speech_gen");
  await expect(page.getByTestId("inspect-summary")).toContainText("WavTokenizer decoder");
  await page.getByLabel("Model name").fill("wt");
  await page.getByRole("button", { name: "Import", exact: true }).click();
  await expect(page.getByTestId("import-status")).toContainText("Imported: wavtokenizer/wt", { timeout: 60_000 });
  const panel = page.getByTestId("tts-panel");
  await panel.getByLabel("MoE-TTS model").selectOption("grin_qwen2_vl/e2e-omni/speech");
  await panel.getByLabel("MoE-TTS codec").selectOption("wavtokenizer/wt");
  await expect(panel.getByLabel("MoE-TTS codec")).toHaveValue("wavtokenizer/wt");
  await page.screenshot({ path: `${SHOTS}/tts-released-models.png`, fullPage: true });

  await newWorkflow(page);
  const text = await addNode(page, "input.text");
  const llm = await addNode(page, "model.moe-llm");
  const tts = await addNode(page, "generate.tts");
  const routing = await addNode(page, "inspect.routing");
  await page.getByTestId(`node-${text}`).getByLabel("Text", { exact: true }).fill("Say hello.");
  await page.getByTestId(`node-${llm}`).getByLabel("Model", { exact: true }).selectOption("grin_qwen2_vl/e2e-omni");
  await page.getByTestId(`node-${llm}`).getByLabel("Emit control tokens").selectOption("speech");
  // the new MoE-TTS node starts on the Models page's choices
  await expect(page.getByTestId(`node-${tts}`).getByLabel("TTS model", { exact: true })).toHaveValue("grin_qwen2_vl/e2e-omni/speech");
  await expect(page.getByTestId(`node-${tts}`).getByLabel("Codec (released MoE-TTS)")).toHaveValue("wavtokenizer/wt");
  await expect(page.getByTestId(`node-${tts}`).getByLabel("Mode (released MoE-TTS)")).toHaveValue("release");
  await page.getByTestId(`node-${tts}`).getByLabel("Max seconds", { exact: true }).fill("2");
  await page.getByRole("button", { name: "Auto-layout" }).click();
  await page.waitForTimeout(400);
  await drag(page, `handle-${text}-out-text`, `handle-${llm}-in-prompt`);
  await drag(page, `handle-${llm}-out-output`, `handle-${tts}-in-llm`);
  await drag(page, `handle-${tts}-out-trace`, `handle-${routing}-in-trace`);
  await expect(page.locator(".react-flow__edge")).toHaveCount(3);

  await page.getByRole("button", { name: "▶ Run" }).click();
  await expect(page.getByTestId("run-status")).toHaveText("finished", { timeout: 150_000 });
  const out = page.getByTestId(`outputs-${tts}`);
  await expect(out).toContainText("release mode");
  const summary = (await out.innerText()).replace(/\s+/g, " ");
  const codes = Number(/(\d+) codes, release mode/.exec(summary)?.[1]);
  const drops = Number(/(\d+) choice\(s\) dropped by capacity/.exec(summary)?.[1]);
  expect(codes).toBeGreaterThan(0);
  expect(codes).toBeLessThanOrEqual(80);
  expect(drops).toBeGreaterThan(0);
  // hear it: the WAV plays and lasts codes / 40 s
  const audio = out.locator("audio");
  await expect(audio).toBeVisible();
  const played = await audio.evaluate(async (a: HTMLAudioElement) => {
    if (!Number.isFinite(a.duration) || a.duration === 0) await new Promise((r) => a.addEventListener("loadedmetadata", r, { once: true }));
    a.muted = true;
    await a.play();
    await new Promise((r) => setTimeout(r, 300));
    return { duration: a.duration, time: a.currentTime };
  });
  expect(played.duration).toBeCloseTo(codes / 40, 3);
  expect(played.time).toBeGreaterThan(0);

  await page.getByRole("button", { name: "Open inspector" }).click();
  const dialog = page.getByRole("dialog", { name: "Routing Inspector" });
  await expect(dialog.getByTestId("heatmap")).toBeVisible();
  await expect(dialog).toContainText(/grin_qwen2_vl\/e2e-omni\/speech · \d+ tokens · 2 layers · 4 experts/);
  await expect(dialog.locator(".convention")).toContainText("dropped");
  await page.screenshot({ path: `${SHOTS}/tts-released-inspector.png`, fullPage: true });
});
