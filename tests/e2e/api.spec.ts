import { expect, test } from "@playwright/test";
import { AUTH_BASE_URL, signUp } from "./helpers";

// A script's view of the production server (accounts on): a token made on the API tokens page, then fetch only.

test("HTTP API: a run driven end to end with fetch and a personal API token", async ({ browser }) => {
  const page = await signUp(browser, "scripter", "scripter-password");
  await page.getByRole("button", { name: /Text → MoE-LLM → routing/ }).click();
  await page.waitForURL(/\/w\//);
  const workflowId = page.url().split("/w/")[1]!;
  await page.goto("/account");
  await page.getByLabel("Token name").fill("notebook");
  await page.getByRole("button", { name: "Create token" }).click();
  const token = (await page.getByTestId("new-token").locator("code").textContent())!;
  expect(token).toMatch(/^mst_[A-Za-z0-9_-]{43}$/);
  await expect(page.getByTestId("token-list")).toContainText("notebook");

  const U = `${AUTH_BASE_URL}/api/v1`;
  const H = { authorization: `Bearer ${token}` };
  expect((await fetch(`${U}/workflows`)).status).toBe(401);
  const workflows = (await (await fetch(`${U}/workflows`, { headers: H })).json()) as { id: string }[];
  expect(workflows.map((w) => w.id)).toContain(workflowId);
  const started = await fetch(`${U}/runs`, {
    method: "POST",
    headers: { ...H, "content-type": "application/json" },
    body: JSON.stringify({ workflowId, params: [{ nodeId: "llm", param: "maxNewTokens", value: 2 }, { nodeId: "prompt", param: "text", value: "from a script" }] }),
  });
  expect(started.status).toBe(200);
  const { runId } = (await started.json()) as { runId: string };

  // Follow the events as a script does: Server-Sent Events until the terminal one.
  const events = await fetch(`${U}/runs/${runId}/events`, { headers: H });
  expect(events.headers.get("content-type")).toMatch(/text\/event-stream/);
  const types: string[] = [];
  const reader = events.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buffer += value;
    let i;
    while ((i = buffer.indexOf("\n\n")) >= 0) {
      types.push((JSON.parse(buffer.slice(0, i).replace(/^data: /, "")) as { type: string }).type);
      buffer = buffer.slice(i + 2);
    }
  }
  expect(types[0]).toBe("queued");
  expect(types.at(-1)).toBe("finished");
  expect(types).toContain("node-done");

  const run = (await (await fetch(`${U}/runs/${runId}`, { headers: H })).json()) as { status: string; nodes: { nodeId: string; status: string }[] };
  expect(run.status).toBe("finished");
  expect(run.nodes.map((n) => n.status)).toEqual(["done", "done", "done", "done"]);

  const st = await fetch(`${U}/runs/${runId}/nodes/routing/trace?format=safetensors`, { headers: H });
  expect(st.status).toBe(200);
  const bytes = new Uint8Array(await st.arrayBuffer());
  const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength))) as Record<string, { shape?: number[] }> & { __metadata__: Record<string, string> };
  expect(header.router_logits!.shape![0]).toBe(8); // uni-moe-tiny/tiny: 8 layers
  expect(header.__metadata__.model).toBe("uni-moe-tiny/tiny");
  expect(JSON.parse(header.__metadata__.tokens!).length).toBe(header.k!.shape![1]);
  const doc = (await (await fetch(`${AUTH_BASE_URL}/api/v1/openapi.json`)).json()) as { paths: Record<string, unknown> };
  expect(Object.keys(doc.paths)).toContain("/runs/{runId}/events");

  // Revoked on the page: the token stops working.
  await page.reload();
  await page.getByRole("button", { name: "Revoke notebook" }).click();
  await expect(page.getByTestId("token-list")).not.toContainText("notebook");
  expect((await fetch(`${U}/runs/${runId}`, { headers: H })).status).toBe(401);
});
