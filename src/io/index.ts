export { BlockDevice, ioCounters, resetIoCounters, setCrashInjection, setDirectCopies } from './device.js';
export type { CrashMode, CreateOptions, IoCounters, OpenOptions, WriteEntry } from './device.js';
export { BlockCache, DEFAULT_CACHE_BLOCKS } from './cache.js';
export { DEFAULT_READER_TIMEOUT_MS, DEFAULT_WRITER_TIMEOUT_MS, lockImage, lockRoot, type ImageLock } from './lock.js';
export type { LockMode } from './lock.js';
