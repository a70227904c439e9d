"""One trainer loop; the paper's three stages (and a base pre-training) are strategies."""
