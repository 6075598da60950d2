"use client";
import { createContext, useContext } from "react";

/** The address of a stored file (an upload or a run's artifact) by its id. */
export type FileUrl = (file: string) => string;

/** The signed-in owner's (or the single user's) address: /api/files/<id>. */
export const ownFileUrl: FileUrl = (file) => `/api/files/${encodeURIComponent(file)}`;

/** A share link's address: the token goes along, so the file route lets a viewer who is not the owner read the shared run's files. */
export function sharedFileUrl(token: string): FileUrl {
  return (file) => `${ownFileUrl(file)}?share=${encodeURIComponent(token)}`;
}

/** How every output view fetches or links a stored file; /s/<token> provides sharedFileUrl(token). */
export const FileUrlContext = createContext<FileUrl>(ownFileUrl);

export function useFileUrl(): FileUrl {
  return useContext(FileUrlContext);
}
