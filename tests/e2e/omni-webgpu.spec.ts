import { expect, test } from "@playwright/test";
import { GPU_BASE_URL } from "./helpers";

// The omni example on a server with STUDIO_EP=webgpu: every node runs its ONNX graphs on ONNX Runtime's WebGPU
// provider (in CI a software GPU, SwiftShader, so this is slow: correctness, not speed). The editor's provider tag
// names the adapter, and the Models page's placement check shows the decoder entirely on WebGPU.
// Cut for CI time, set in the nodes as a user would (as tests/integration/webgpu-examples.test.ts cuts the same
// workflow, whose outputs it compares with the CPU's): MoE-LLM 4 new tokens, MoE-TTS 0.5 s, the DiT's paper sampler
// with 2 steps (the released sampler runs 59 steps × 3 branches whatever Steps says). As shipped it took 7.6 min.
test.use({ baseURL: GPU_BASE_URL });

test("the omni example runs on WebGPU; the provider tag names the adapter; the Models page reports placement", async ({ page }) => {
  test.setTimeout(900_000);
  await page.goto("/");
  await page.getByRole("button", { name: /Image \+ audio → MoE-LLM/ }).click();
  await page.waitForURL(/\/w\//);
  await expect(page.getByTestId("ep")).toContainText(/^webgpu · .+ \((Vulkan|Metal|D3D12)(, software)?\)$/, { timeout: 60_000 });
  const node = (id: string) => page.getByTestId(`node-${id}`);
  await node("llm").getByRole("spinbutton", { name: "Max new tokens", exact: true }).fill("4");
  await node("tts").getByRole("spinbutton", { name: "Max seconds", exact: true }).fill("0.5");
  await node("dit").getByRole("combobox", { name: "Sampler", exact: true }).selectOption("paper");
  await node("dit").getByRole("spinbutton", { name: "Steps", exact: true }).fill("2");
  await expect(node("dit").getByRole("spinbutton", { name: "Steps", exact: true })).toHaveValue("2");
  await page.getByRole("button", { name: "▶ Run" }).click();
  await expect(page.getByTestId("run-status")).toHaveText("finished", { timeout: 840_000 });
  for (const id of ["vision", "hearing", "prompt", "llm", "rope", "routing", "tts", "dit"]) await expect(page.getByTestId(`status-${id}`)).toHaveAttribute("data-status", "done");
  await expect(page.getByTestId("ep")).toContainText("webgpu · ");
  await expect(page.getByTestId("outputs-tts").locator("audio")).toBeVisible();
  await expect(page.getByTestId("outputs-dit").locator("img")).toBeVisible();
  await expect(page.getByTestId("outputs-routing").getByTestId("heatmap-mini")).toBeVisible();

  await page.goto("/models");
  await expect(page.getByTestId("models-ep")).toContainText("webgpu · ");
  const row = page.getByTestId("placement-table").locator('tr[data-graph="decoder:uni-moe-tiny/tiny"]');
  await row.getByRole("button", { name: "Check on webgpu" }).click();
  const summary = row.getByTestId("placement-summary");
  await expect(summary).toContainText("on WebGpu", { timeout: 120_000 });
  // On WebGPU the decoder is the device-resident graph: every node on the GPU, no Memcpy node inside it.
  await expect(summary).toHaveAttribute("data-memcpy", "0");
  await expect(summary).toHaveAttribute("data-providers", "1");
  await expect(summary).toContainText("no Memcpy inside the graph");
  await expect(row).not.toContainText("NonZero");
  const vae = page.getByTestId("placement-table").locator('tr[data-graph="VAE decoder:uni-moe-tiny/dit"]');
  await vae.getByRole("button", { name: "Check on webgpu" }).click();
  await expect(vae.getByTestId("placement-summary")).toHaveAttribute("data-memcpy", "0", { timeout: 120_000 });
  await expect(vae.getByTestId("placement-summary")).toContainText("no Memcpy inside the graph");
});
