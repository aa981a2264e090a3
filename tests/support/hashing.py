"""A password hasher for the test process: the production algorithm with few iterations."""

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class QuickPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    """Same algorithm name, so worker and web processes a test starts (production hashers)
    verify these hashes too: PBKDF2 reads the iteration count from the hash itself."""

    iterations = 1_000
