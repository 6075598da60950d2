"use client";
import dynamic from "next/dynamic";
import { memo, useRef, useState } from "react";
import { useCatalog } from "./catalog";
import { useFileUrl } from "@/app/inspector/file-url";
import { trpc } from "@/app/lib/trpc";
import { AblationCost } from "./AblationPlanField";
import { InterventionsField } from "./InterventionsField";
import { nullableNumber, type ParamSchema } from "./param-schema";
import { useEditor } from "./store";

const ScriptField = dynamic(() => import("./ScriptField"), { ssr: false, loading: () => <p className="muted">Loading editor…</p> });

export type { ParamSchema };

function uploadKind(accept: string | undefined): "image" | "audio" | "video" {
  if (accept?.startsWith("audio")) return "audio";
  if (accept?.startsWith("video")) return "video";
  return "image";
}

function FilePicker({ nodeId, name, value, schema }: { nodeId: string; name: string; value: string; schema: ParamSchema }) {
  const setParam = useEditor.getState().setParam; // an action: no subscription
  const [status, setStatus] = useState<{ busy?: boolean; error?: string }>({});
  const fileUrl = useFileUrl();
  const kind = uploadKind(schema.accept);
  const picker = useRef<HTMLInputElement>(null);
  async function upload(file: File) {
    setStatus({ busy: true });
    try {
      const res = await fetch(`/api/upload?kind=${kind}&filename=${encodeURIComponent(file.name)}`, { method: "POST", body: file });
      const body = (await res.json()) as { id?: string; error?: string };
      if (!res.ok || !body.id) throw new Error(body.error ?? `upload failed (${res.status})`);
      setParam(nodeId, name, body.id);
      setStatus({});
    } catch (err) {
      setStatus({ error: (err as Error).message });
    }
  }
  return (
    <div className="nodrag">
      <div className="file-pick">
        <span className="fname" title={value}>{value ? `${value.slice(0, 10)}…${value.split(".")[1] ?? ""}` : "no file"}</span>
        <input
          ref={picker}
          type="file"
          accept={schema.accept}
          hidden
          data-testid={`file-${nodeId}-${name}`}
          onChange={(e) => {
            const f = e.target.files?.[0];
            e.target.value = "";
            if (f) void upload(f);
          }}
        />
        {/* a real button: reachable with Tab and pressed with Enter or Space, as the mouse can */}
        <button type="button" onClick={() => picker.current?.click()} disabled={status.busy} aria-label={`Choose ${schema.label ?? name}`}>
          {status.busy ? "Uploading…" : "Choose…"}
        </button>
      </div>
      {status.error && <div className="error-text">{status.error}</div>}
      {value && kind === "image" && <img className="thumb" src={fileUrl(value)} alt="uploaded image" />}
      {value && kind === "audio" && <audio controls src={fileUrl(value)} style={{ width: "100%" }} />}
      {value && kind === "video" && <video controls src={fileUrl(value)} className="thumb" />}
    </div>
  );
}

function ModelPicker({ value, onChange, label }: { value: string; onChange: (v: string) => void; label: string }) {
  const models = trpc.models.list.useQuery(undefined, { staleTime: 30_000 });
  const options = models.data ?? [];
  const known = options.some((m) => m.ref === value);
  return (
    <select className="nodrag" value={value} onChange={(e) => onChange(e.target.value)} aria-label={label}>
      {!known && <option value={value}>{value} (not found)</option>}
      {options.map((m) => (
        <option key={m.ref} value={m.ref}>
          {m.ref}
          {m.label ? ` — ${m.label}` : ""}
        </option>
      ))}
    </select>
  );
}

/**
 * A routing override (Top-P or top-k) shown only when the node's model's router understands it; a value set for a
 * model that ignores it (e.g. after switching models) stays visible with the reason and a reset, since the node
 * refuses to run with it.
 */
function RoutingOverride(p: { schema: ParamSchema; label: string; value: unknown; modelRef: string; onChange: (v: unknown) => void; numberInput: (max?: number) => React.ReactNode; nullable: boolean }) {
  const info = trpc.models.info.useQuery({ ref: p.modelRef }, { staleTime: 60_000, retry: false });
  if (!info.data) return null;
  const c = p.schema.routingControl === "topK" ? info.data.controls.topK : info.data.controls.topP;
  // null means "the model's own"
  const set = typeof p.value === "number" && p.value > 0;
  if (!c.ok && !set) return null;
  const modelsOwn = p.schema.routingControl === "topP" ? info.data.topP : info.data.topK;
  return (
    <div className="param" title={p.schema.description}>
      <span>{p.label}</span>
      {c.ok ? (
        p.nullable ? (
          <>
            <label className="row nodrag">
              <input type="checkbox" aria-label={`${p.label}: the model's`} checked={p.value === null || p.value === undefined} onChange={(e) => p.onChange(e.target.checked ? null : modelsOwn !== null && modelsOwn > 0 ? modelsOwn : 1)} />
              <span>the model&apos;s{modelsOwn !== null ? ` (${modelsOwn})` : ""}</span>
            </label>
            {set && p.numberInput((c as { max?: number }).max)}
          </>
        ) : (
          p.numberInput((c as { max?: number }).max)
        )
      ) : (
        <div className="nodrag" data-testid={`refused-${p.schema.routingControl}`}>
          <span className="error-text">
            {String(p.value)} is not used by {p.modelRef}: {c.reason}
          </span>{" "}
          <button onClick={() => p.onChange(p.nullable ? null : 0)}>reset</button>
        </div>
      )}
    </div>
  );
}

function ParamFieldImpl({ nodeId, name, schema: given, value }: { nodeId: string; name: string; schema: ParamSchema; value: unknown }) {
  const nullable = nullableNumber(given);
  const schema = nullable ?? given;
  const setParam = useEditor.getState().setParam; // an action: no subscription
  // The intervention editor and the routing overrides need the node's model (its layers, experts and router).
  // A node without a `model` param runs on its type's default model (the params' schema default): so do these fields.
  const catalog = useCatalog();
  const modelRef = useEditor((s) => {
    if (schema.widget !== "interventions" && schema.widget !== "routing-override") return "";
    const node = s.nodes.find((n) => n.id === nodeId);
    if (!node) return "";
    const model = node.data.params.model ?? (catalog.get(node.data.nodeType)?.paramsSchema.properties as Record<string, ParamSchema> | undefined)?.model?.default;
    return model === undefined ? "" : String(model);
  });
  const label = schema.label ?? name;
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  const onChange = (v: unknown) => setParam(nodeId, name, v);
  let control;
  if (schema.widget === "interventions") {
    control = <InterventionsField value={String(value ?? "")} onChange={onChange} modelRef={modelRef} label={label} />;
  } else if (schema.widget === "model") {
    control = <ModelPicker value={String(value ?? "")} onChange={onChange} label={label} />;
  } else if (schema.widget === "file") {
    control = <FilePicker nodeId={nodeId} name={name} value={typeof value === "string" ? value : ""} schema={schema} />;
  } else if (schema.enum) {
    control = (
      <select className="nodrag" value={String(value)} onChange={(e) => onChange(schema.enum!.find((o) => String(o) === e.target.value))} aria-label={schema.widget === "ablation-plan" ? label : undefined}>
        {schema.enum.map((o) => (
          <option key={String(o)} value={String(o)}>{String(o)}</option>
        ))}
      </select>
    );
    if (schema.widget === "ablation-plan")
      control = (
        <>
          {control}
          <AblationCost nodeId={nodeId} />
        </>
      );
  } else if (type === "boolean") {
    control = <input className="nodrag" type="checkbox" checked={value === true} onChange={(e) => onChange(e.target.checked)} />;
  } else if (type === "number" || type === "integer") {
    const num = typeof value === "number" ? value : Number(schema.default ?? 0);
    const step = schema.step ?? (type === "integer" ? 1 : 0.01);
    const parse = (s: string) => (type === "integer" ? parseInt(s, 10) : parseFloat(s));
    const numberInput = (maxOverride?: number) => {
      const max = maxOverride ?? schema.maximum;
      const hasRange = schema.minimum !== undefined && max !== undefined;
      return (
        <div className="row nodrag">
          {hasRange && <input type="range" min={schema.minimum} max={max} step={step} value={num} onChange={(e) => onChange(parse(e.target.value))} aria-label={`${label} slider`} />}
          <input type="number" min={schema.minimum} max={max} step={step} value={num} onChange={(e) => e.target.value !== "" && onChange(parse(e.target.value))} aria-label={label} />
        </div>
      );
    };
    if (schema.widget === "routing-override") return <RoutingOverride schema={schema} label={label} value={value} modelRef={modelRef} onChange={onChange} numberInput={numberInput} nullable={nullable !== null} />;
    control = numberInput();
  } else if (schema.widget === "textarea" && schema.language === "javascript") {
    control = <ScriptField nodeId={nodeId} value={String(value ?? "")} onChange={onChange} label={label} />;
  } else if (schema.widget === "textarea") {
    control = <textarea className="nodrag nowheel" value={String(value ?? "")} onChange={(e) => onChange(e.target.value)} aria-label={label} />;
  } else {
    control = <input className="nodrag" type="text" value={String(value ?? "")} onChange={(e) => onChange(e.target.value)} aria-label={label} />;
  }
  // Composite widgets get a plain wrapper: a <label> would name its first button or select.
  const Wrapper = schema.widget === "interventions" || schema.widget === "ablation-plan" || schema.language ? "div" : "label";
  return (
    <Wrapper className="param" title={schema.description}>
      <span>{label}</span>
      {control}
    </Wrapper>
  );
}

export const ParamField = memo(ParamFieldImpl);
