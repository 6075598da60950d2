import Markdown, { defaultUrlTransform, type Components, type Options } from "react-markdown";
import remarkGfm from "remark-gfm";

/**
 * Links open outside the editor and pass no referrer; an image is shown as its alt text and address, never fetched
 * (a shared workflow's note must not make its readers' browsers load a third party's URL).
 */
const COMPONENTS: Components = {
  a: ({ href, children }) =>
    href ? (
      <a href={href} target="_blank" rel="noopener noreferrer nofollow">
        {children}
      </a>
    ) : (
      <>{children}</>
    ),
  img: ({ alt, src }) => <span className="note-image">{`[image${alt ? `: ${alt}` : ""}${typeof src === "string" && src ? ` ${src}` : ""}]`}</span>,
};

const OPTIONS: Options = { remarkPlugins: [remarkGfm], components: COMPONENTS, urlTransform: (url) => defaultUrlTransform(url) || undefined };

/**
 * A notebook note's markdown as React elements (react-markdown: no HTML string). Raw HTML in a note is shown as the
 * characters typed (react-markdown's default without rehype-raw or skipHtml); unsafe URL schemes are removed.
 */
export function NoteMarkdown({ text }: { text: string }) {
  return <Markdown {...OPTIONS}>{text}</Markdown>;
}
