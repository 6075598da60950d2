import { expect, test, type Page } from "@playwright/test";
import { addNode, drag, newWorkflow } from "./helpers";

const SHOTS = "test-results/screens";

/** Pairs of canvas nodes whose boxes overlap ("a/b"). */
async function overlappingNodes(page: Page): Promise<string[]> {
  const boxes = await page.locator(".react-flow__node").evaluateAll((els) =>
    els.map((e) => {
      const m = /translate\(([-\d.]+)px, ?([-\d.]+)px\)/.exec((e as HTMLElement).style.transform)!;
      return { id: e.getAttribute("data-id")!, x: Number(m[1]), y: Number(m[2]), w: (e as HTMLElement).offsetWidth, h: (e as HTMLElement).offsetHeight };
    }),
  );
  return boxes.flatMap((a) => boxes.filter((b) => a.id < b.id && a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h).map((b) => `${a.id}/${b.id}`));
}

test("every example opens with no node over another", async ({ page }) => {
  await page.goto("/");
  const examples = page.getByRole("region", { name: "Examples" }).getByRole("button");
  await expect(examples.first()).toBeVisible();
  const count = await examples.count();
  expect(count).toBeGreaterThanOrEqual(6);
  for (let i = 0; i < count; i++) {
    await page.goto("/");
    await page.getByRole("region", { name: "Examples" }).getByRole("button").nth(i).click();
    await page.waitForURL(/\/w\//);
    await expect(page.locator(".react-flow__node").first()).toBeVisible();
    await page.waitForTimeout(300);
    expect(await overlappingNodes(page), `example ${i + 1}`).toEqual([]);
  }
});

test("the omni example runs end to end: heatmap, (t, h, w) positions, a waveform and an image", async ({ page }) => {
  test.setTimeout(180_000);
  await page.goto("/");
  await page.getByRole("button", { name: /Image \+ audio → MoE-LLM/ }).click();
  await page.waitForURL(/\/w\//);
  await expect(page.locator(".react-flow__node")).toHaveCount(12);
  await expect(page.getByTestId("node-image").locator("img")).toBeVisible();
  await page.getByRole("button", { name: "▶ Run" }).click();
  // The DiT's image refines live: at least one intermediate preview appears while it samples.
  await expect(page.getByTestId("preview-dit")).toBeVisible({ timeout: 150_000 });
  await expect(page.getByTestId("run-status")).toHaveText("finished", { timeout: 150_000 });
  for (const id of ["vision", "hearing", "prompt", "llm", "rope", "routing", "tts", "dit"]) await expect(page.getByTestId(`status-${id}`)).toHaveAttribute("data-status", "done");
  await expect(page.getByTestId("outputs-tts").locator("audio")).toBeVisible();
  // The WAV is as long as the TTS says (2 s cap at 40 codes/s = 80 codes × 600 samples at 24 kHz).
  const duration = await page.getByTestId("outputs-tts").locator("audio").evaluate(async (a: HTMLAudioElement) => {
    if (!Number.isFinite(a.duration) || a.duration === 0) await new Promise((r) => a.addEventListener("loadedmetadata", r, { once: true }));
    return a.duration;
  });
  expect(duration).toBeGreaterThan(0.5);
  expect(duration).toBeLessThanOrEqual(2.01);
  await expect(page.getByTestId("outputs-tts").getByTestId("spectrogram")).toBeVisible();
  await expect(page.getByTestId("outputs-dit").locator("img")).toBeVisible();
  await expect(page.getByTestId("outputs-routing").getByTestId("heatmap-mini")).toBeVisible();
  // As the example opens, no node covers another once the results are shown (the TTS waveform was under the DiT).
  expect(await overlappingNodes(page)).toEqual([]);
  await page.getByRole("button", { name: "Auto-layout" }).click();
  await page.waitForTimeout(500);
  await page.screenshot({ path: `${SHOTS}/omni.png` });

  // The generated PNG carries its workflow: dropping it on an empty canvas restores the graph.
  const src = await page.getByTestId("outputs-dit").locator("img").getAttribute("src");
  const png = Buffer.from(await (await page.request.get(src!)).body()).toString("base64");
  const url = page.url();
  await newWorkflow(page);
  const dt = await page.evaluateHandle((b64) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const transfer = new DataTransfer();
    transfer.items.add(new File([bytes], "generated.png", { type: "image/png" }));
    return transfer;
  }, png);
  await page.dispatchEvent(".editor-body", "drop", { dataTransfer: dt });
  await expect(page.locator(".react-flow__node")).toHaveCount(12);
  await expect(page.getByText("Opened the workflow stored in generated.png")).toBeVisible();
  await page.goto(url);

  await page.getByRole("button", { name: "Open RoPE inspector" }).click();
  const dialog = page.getByRole("dialog", { name: "RoPE Inspector" });
  await expect(dialog.getByTestId("rope-grid-h")).toBeVisible();
  await expect(dialog.getByTestId("rope-time")).toBeVisible();
  // The sample image is two tiles wide: 2 × 4 × 4 image tokens; 200 audio tokens (one 30-s chunk).
  await expect(dialog.getByTestId("rope-table").locator('[data-modality="image"]')).toHaveCount(32);
  await expect(dialog.getByTestId("rope-table").locator('[data-modality="audio"]')).toHaveCount(200);
  await page.screenshot({ path: `${SHOTS}/rope-inspector.png` });
});

test("upload an image and a WAV, build image + audio + text → Prompt Builder → RoPE Inspector", async ({ page }) => {
  test.setTimeout(120_000);
  const { default: sharp } = await import("sharp");
  const png = await sharp({ create: { width: 400, height: 400, channels: 3, background: { r: 30, g: 160, b: 90 } } }).png().toBuffer();
  const rate = 16000;
  const pcm = Buffer.alloc(44 + rate * 2 * 2);
  pcm.write("RIFF", 0); pcm.writeUInt32LE(36 + rate * 4, 4); pcm.write("WAVE", 8); pcm.write("fmt ", 12);
  pcm.writeUInt32LE(16, 16); pcm.writeUInt16LE(1, 20); pcm.writeUInt16LE(1, 22); pcm.writeUInt32LE(rate, 24);
  pcm.writeUInt32LE(rate * 2, 28); pcm.writeUInt16LE(2, 32); pcm.writeUInt16LE(16, 34); pcm.write("data", 36); pcm.writeUInt32LE(rate * 4, 40);
  for (let i = 0; i < rate * 2; i++) pcm.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / rate)), 44 + 2 * i);

  await newWorkflow(page);
  const image = await addNode(page, "input.image");
  const audio = await addNode(page, "input.audio");
  const vision = await addNode(page, "encode.vision");
  const hearing = await addNode(page, "encode.audio");
  const prompt = await addNode(page, "prompt.builder");
  const rope = await addNode(page, "inspect.rope");
  await page.getByTestId(`file-${image}-file`).setInputFiles({ name: "green.png", mimeType: "image/png", buffer: png });
  await page.getByTestId(`file-${audio}-file`).setInputFiles({ name: "tone.wav", mimeType: "audio/wav", buffer: pcm });
  await expect(page.getByTestId(`node-${image}`).locator("img")).toBeVisible();
  const links: [string, string][] = [
    [`handle-${image}-out-image`, `handle-${vision}-in-image`],
    [`handle-${audio}-out-audio`, `handle-${hearing}-in-audio`],
    [`handle-${vision}-out-features`, `handle-${prompt}-in-image`],
    [`handle-${hearing}-out-features`, `handle-${prompt}-in-audio`],
    [`handle-${prompt}-out-sequence`, `handle-${rope}-in-sequence`],
  ];
  for (const [from, to] of links) {
    // Lay the graph out before each link, so no node covers a socket.
    await page.getByRole("button", { name: "Auto-layout" }).click();
    await page.waitForTimeout(400);
    await drag(page, from, to);
  }
  await expect(page.locator(".react-flow__edge")).toHaveCount(5);
  await page.getByRole("button", { name: "▶ Run" }).click();
  await expect(page.getByTestId("run-status")).toHaveText("finished", { timeout: 90_000 });
  await page.getByRole("button", { name: "Open RoPE inspector" }).click();
  const dialog = page.getByRole("dialog", { name: "RoPE Inspector" });
  await expect(dialog.getByTestId("rope-grid-w")).toBeVisible();
  await expect(dialog.getByTestId("rope-time")).toBeVisible();
  await expect(dialog.getByTestId("rope-table").locator('[data-modality="image"]')).toHaveCount(64); // 400×400 fits the 2×2 grid best: 4 tiles × 4²
});
