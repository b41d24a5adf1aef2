-- The original demo's 15 products, with the same ids, names, categories and prices.
INSERT INTO products (id, name, description, price, category) VALUES
    (1,  'MacBook Pro 16"',         'Apple laptop with an M-series chip and a 16-inch Liquid Retina XDR display.', 2499.99, 'Laptops'),
    (2,  'iPhone 15 Pro',           'Titanium smartphone with the A17 Pro chip and a 48 MP main camera.',           999.99, 'Smartphones'),
    (3,  'Sony WH-1000XM5',         'Wireless over-ear headphones with industry-leading noise cancellation.',       399.99, 'Audio'),
    (4,  'Nintendo Switch OLED',    'Hybrid games console with a vivid 7-inch OLED screen.',                        349.99, 'Gaming'),
    (5,  'Samsung 65" QLED TV',     'A 65-inch 4K QLED television with Quantum HDR.',                              1299.99, 'TVs'),
    (6,  'iPad Air',                'Thin and light tablet with the M1 chip and a 10.9-inch display.',              599.99, 'Tablets'),
    (7,  'AirPods Pro',             'In-ear wireless earbuds with active noise cancellation and spatial audio.',    249.99, 'Audio'),
    (8,  'PlayStation 5',           'Sony games console with an ultra-fast SSD and ray-traced graphics.',           499.99, 'Gaming'),
    (9,  'Dell XPS 13',             'Compact 13-inch ultrabook with an InfinityEdge display.',                     1199.99, 'Laptops'),
    (10, 'Google Pixel 8',          'Android smartphone with the Tensor G3 chip and an AI-assisted camera.',        699.99, 'Smartphones'),
    (11, 'Bose QuietComfort 45',    'Comfortable wireless headphones with balanced noise cancellation.',            329.99, 'Audio'),
    (12, 'LG 55" OLED TV',          'A 55-inch 4K OLED television with self-lit pixels and perfect blacks.',       1499.99, 'TVs'),
    (13, 'Microsoft Surface Pro 9', 'Two-in-one tablet that turns into a laptop with its detachable keyboard.',      999.99, 'Tablets'),
    (14, 'Xbox Series X',           'Microsoft games console with 12 teraflops and 4K gaming at up to 120 fps.',    499.99, 'Gaming'),
    (15, 'HP Spectre x360',         'Convertible 2-in-1 laptop with a 360-degree hinge and an OLED option.',       1399.99, 'Laptops');

-- Explicit ids above leave the sequence at 1; move it past them so new products get 16, 17, ...
SELECT setval(pg_get_serial_sequence('products', 'id'), (SELECT max(id) FROM products));
