package cache

// SetMongoBeforeWrite makes m call f before each BulkWrite of Apply, for
// tests that interleave another writer. f nil removes the hook.
func SetMongoBeforeWrite(m *MongoStore, f func()) { m.beforeWrite = f }
