import Link from "next/link";
import Markdown, { defaultUrlTransform, type Options } from "react-markdown";
import rehypeSlug from "rehype-slug";
import remarkGfm from "remark-gfm";
import { docHref, docPageNames, docSrc, type DocPage } from "./pages";

/** How the pages are parsed (GitHub-flavoured, headings get GitHub's ids); tests/unit/docs checks links with the same. */
export const MARKDOWN: Options = { remarkPlugins: [remarkGfm], rehypePlugins: [rehypeSlug], skipHtml: true };

/**
 * One documentation page as React elements (react-markdown: no HTML string, no dangerouslySetInnerHTML).
 * Raw HTML in the markdown is dropped (`skipHtml`; no rehype-raw), URLs pass react-markdown's safe-protocol
 * filter, links between the pages point at their /docs routes and images at public/ files.
 */
export function DocMarkdown({ page }: { page: DocPage }) {
  return (
    <Markdown
      {...MARKDOWN}
      urlTransform={(url, key) => defaultUrlTransform((key === "href" ? docHref(url, page.name) : key === "src" ? docSrc(url, page.name) : undefined) ?? "") || undefined}
    >
      {page.markdown}
    </Markdown>
  );
}

/** The page with the list of all pages beside it. */
export function DocView({ page }: { page: DocPage }) {
  const names = docPageNames();
  return (
    <main className="page docs-page">
      <nav className="docs-nav" aria-label="Documentation pages">
        <Link href="/">← Workflows</Link>
        <ul>
          <li>
            <Link href="/docs" aria-current={page.name === null ? "page" : undefined}>
              Start (README)
            </Link>
          </li>
          {names.map((n) => (
            <li key={n}>
              <Link href={`/docs/${n}`} aria-current={page.name === n ? "page" : undefined}>
                {n}
              </Link>
            </li>
          ))}
        </ul>
      </nav>
      <article className="docs-body" data-testid="docs-body">
        <DocMarkdown page={page} />
      </article>
    </main>
  );
}
