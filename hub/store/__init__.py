"""The hub's store: SQLAlchemy 2 async models, sessions and alembic migrations.

Metadata and ciphertext only: nothing here ever holds personal data in clear."""
