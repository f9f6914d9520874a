import { storeConformance } from './conformance.js';
import { MemoryStore } from './memory-store.js';

storeConformance('memory', async () => {
  const store = new MemoryStore();
  return { store, close: () => store.close() };
});
