"""Knowledge-base models arrive with the knowledge-base issue."""
