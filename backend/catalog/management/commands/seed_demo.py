"""Seed the demo catalog and the flash-sale product (idempotent)."""

from django.core.management.base import BaseCommand, CommandError

from catalog.services import catalog_seed


class Command(BaseCommand):
    help = "Create the demo catalog (stock >= 100 each) and FLASH-001 with stock N (default 50)."

    def add_arguments(self, parser):
        parser.add_argument("--flash-stock", type=int, default=50, metavar="N")

    def handle(self, *args, flash_stock: int, **options):
        if flash_stock < 0:
            raise CommandError("--flash-stock must be >= 0")
        products = catalog_seed(flash_stock=flash_stock)
        for product in products:
            self.stdout.write(
                f"{product.sku:<12} {product.name:<28} {product.price:>8} stock={product.stock}"
            )
        self.stdout.write(self.style.SUCCESS(f"Seeded {len(products)} products."))
