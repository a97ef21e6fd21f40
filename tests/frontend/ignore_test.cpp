// IgnoreMatcher tests (in progress).
