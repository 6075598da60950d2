/**
 * Notebook notes (and the share page's) render their markdown as React elements: headings, emphasis, lists, code
 * and GFM tables become markup; raw HTML stays the characters that were typed; unsafe link schemes are removed;
 * links get rel="noopener noreferrer nofollow"; images are never fetched (shown as their alt text and address).
 */
import { createElement } from "react";
import { renderToStaticMarkup } from "react-dom/server";
import { describe, expect, it } from "vitest";
import { NoteMarkdown } from "@/app/editor/NoteMarkdown";

const html = (text: string) => renderToStaticMarkup(createElement(NoteMarkdown, { text }));

describe("NoteMarkdown", () => {
  it("renders markdown", () => {
    const out = html("## My note\n\nThe **router** looks *odd* at `L3`.\n\n- a\n- b\n\n| x | y |\n|---|---|\n| 1 | 2 |");
    expect(out).toContain("<h2>My note</h2>");
    expect(out).toContain("<strong>router</strong>");
    expect(out).toContain("<em>odd</em>");
    expect(out).toContain("<code>L3</code>");
    expect(out).toContain("<li>a</li>");
    expect(out).toMatch(/<table>[\s\S]*<td>1<\/td>/);
  });

  it("shows raw HTML as text, inline and as a block", () => {
    const payload = `<img src=x onerror="alert(1)"><svg onload="alert(2)"></svg>`;
    const out = html(`# t ${payload}\n\n${payload}\n\n<script>alert(3)</script>\n\nok <b>bold?</b>`);
    expect(out).not.toMatch(/<img|<svg|<script|<b>/);
    expect(out).toContain("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;");
    expect(out).toContain("&lt;script&gt;alert(3)&lt;/script&gt;");
    expect(out).toContain("&lt;b&gt;bold?&lt;/b&gt;");
  });

  it("drops unsafe link targets and marks the others", () => {
    for (const url of ["javascript:alert(1)", "JaVaScRiPt:alert(1)", "data:text/html,<script>alert(1)</script>", "vbscript:x"]) {
      const out = html(`[click](${url}) and <${url}>`);
      expect(out, url).not.toMatch(/href="(javascript|data|vbscript):/i);
      expect(out, url).toContain("click");
    }
    const out = html("[docs](https://example.org/a?b=1) [rel](/docs/editor)");
    expect(out).toContain('<a href="https://example.org/a?b=1" target="_blank" rel="noopener noreferrer nofollow">docs</a>');
    expect(out).toContain('href="/docs/editor"');
  });

  it("never loads an image", () => {
    const out = html("![a chart](https://tracker.example/pixel.png) ![](javascript:alert(1))");
    expect(out).not.toContain("<img");
    expect(out).toContain("[image: a chart https://tracker.example/pixel.png]");
    expect(out).toContain("[image]");
  });
});
