"""Edge cases for the content rules, written to sit on the rules' edges (a review helper's probe).

ORDINARY: (id, None, subject, text, html) that must pass. EVASIVE: (id, rule, subject, text, html) to catch.
"""
SELLER = "orders@seller-shop.example"
SELLER2 = "giulia@ceramiche-bianchi.it"
BUYER = "ann.buyer@example.com"
BA = "b0b0b0b0b0b0b0b0@relay.test"
SA = "s0s0s0s0s0s0s0s0@relay.test"

def gmail(body_html, quote_text="Thanks, when will it ship?"):
    return (f'<div dir="ltr">{body_html}</div><br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">'
            f'On Tue, 4 Jun 2026 at 09:12, Ann Buyer &lt;<a href="mailto:{BA}">{BA}</a>&gt; wrote:<br></div>'
            f'<blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex;border-left:1px solid rgb(204,204,204);padding-left:1ex">'
            f'{quote_text}</blockquote></div>')

def outlook(body_html):
    return ('<html xmlns:v="urn:schemas-microsoft-com:vml" xmlns:o="urn:schemas-microsoft-com:office:office" '
            'xmlns:w="urn:schemas-microsoft-com:office:word" xmlns:m="http://schemas.microsoft.com/office/2004/12/omml" '
            'xmlns="http://www.w3.org/TR/REC-html40"><head><meta name=Generator content="Microsoft Word 15 (filtered medium)">'
            '<style><!-- @font-face {font-family:"Calibri"; src: url(https://fonts.example.net/calibri.woff);} '
            'p.MsoNormal {margin:0cm; font-size:11.0pt; background:url("http://intranet.example.com/bg.png");} --></style>'
            '<!--[if gte mso 9]><xml><o:shapedefaults v:ext="edit" spidmax="1026" /></xml><![endif]--></head>'
            '<body lang=EN-GB link="#0563C1" vlink="#954F72"><div class=WordSection1>'
            + body_html + '<p class=MsoNormal><o:p>&nbsp;</o:p></p></div></body></html>')

# (id, expected, subject, text, html)  expected None = ordinary
ORDINARY = [
# ---------------- English
("en01", None, "Re: Bench delivery", "Hi Tom,\nthe bench is 1.5m x 0.45m and weighs ca. 18 kg. Our van can come Wed 10.30-12.00 or Thu 9.30-11.00.Which suits you better?\nThanks.See you then,\nMark", None),
("en02", None, "Your order now has a tracking number", "Hi Ann,\ngood news, your order now has a tracking number: 9400 1000 0000 0000 0000 00 (USPS). Order id #88-1243.\nBest,\nJo", None),
("en03", None, "Order update", "Hi Ann,\nquick follow up on your order 55123: the lamp is packed and your order now ships Monday morning 📦\nI will check the review of the shipment with the courier if anything goes wrong.\nCheers, Jo", None),
("en04", None, "Re: Delivery to your hotel", "Hi Ann,\nno problem, we can deliver to the hotel you mentioned. Is it the five stars hotel near you on King St. (the Grand)? Please confirm the room name c/o reception.\nThanks,\nJo", None),
("en05", None, "Partial refund", "Hi Ann,\nI'm sorry about the scratch on the frame. I've taken 15% off the price as an apology and refunded €12.50 to your card today.\nRegards,\nJo", None),
("en06", None, "Re: discount not applied", "Hi Ann,\nyou're right, the coupon you applied at checkout was not taken into account by the site. I've refunded the difference ($4.20).\nSorry!\nJo", None),
("en07", None, "Refund done", "Hi Ann,\nI've issued a full refund for the broken mug. Thank you for the feedback on our packaging, we'll use thicker bubble wrap from now on.\nKind regards,\nPriya", None),
("en08", None, "Re: your message", "Hi Ann,\nthanks for your feedback about the late parcel. I have sent a partial refund of $5.00 for the inconvenience.\nPriya", None),
("en09", None, "Gift wrap", "Hi Ann,\nI've added gift wrap for the garland of stars, and a handwritten card.\nBest,\nPriya", None),
("en10", None, "Re: Phone case compatibility", "Hi Ann,\nthe case fits the iPhone 15 (not the Pro). After updating to iOS 17.2 MagSafe charging works fine. Model no. A1B2.C3, batch 2026.04.\nThanks.Best regards,\nSam", None),
("en11", None, "Invoice attached", "Hi Ann,\nplease find invoice.pdf and the photo.jpeg of the packed box attached, plus scan.tiff of the customs form.\np.s. the parcel is ca. 2.3 kg.\nn.b. signature needed.\nThanks.Love, Mia", None),
("en12", None, "Shipped from our supplier", "Hi Ann,\nyour rug ships directly from our supplier, Ningbo Homeware Co.Ltd, with tracking LP00123456789CN. It should arrive in 10-14 days.\nRegards,\nJo", None),
("en13", None, "Re: Re: Size", "Hi Ann,\nsize M is fine for you.It runs true to size.\nJo\n\n> Will size M fit? I'm 1.68m tall.\n> Thanks, Ann", None),
("en14", None, "Re: order 7781", "Thank you Ann!\n\nOn Mon, 3 Jun 2026, Ann wrote:\n> Got it, love it! I'll definitely leave a 5-star review :)\n", None),
("en15", None, "Your order", "Hi Ann,\nthe mug was shipped today.In the meantime, if you have any questions just reply here.\nJo", None),
("en16", None, "Custom print", "Hi Ann,\nfor the custom print please send the artwork as a PDF, or as logo.ai if you have Illustrator. A 300 dpi photo.png also works.\nJo", None),
("en17", None, "Re: policies", "Hi Ann,\nreturns are free within 30 days; please have a look at our shop policies on the listing page for the details.\nJo", None),
("en18", None, "Re: Color", "Hi Ann,\n", gmail('Hi Ann,<br><br>the cushion is sage green, ca. 45 x 45 cm. See photo.jpeg attached 😊<br><br>Best,<br>Emma<br><div class="gmail_signature" data-smartmail="gmail_signature">Emma | ' + SELLER + '</div>')),
("en19", None, "Re: Color", "", gmail('Thanks so much Ann <img data-emoji="😊" class="an1" alt="😊" aria-label="😊" src="https://fonts.gstatic.com/s/e/notoemoji/15.0/1f60a/32.png" loading="lazy"> It ships tomorrow.')),
("en20", None, "Your parcel", "", outlook('<p class=MsoNormal>Dear Ann,<o:p></o:p></p><p class=MsoNormal>your parcel (order 4471, 2 items, €38.90) left today with DHL, tracking 00340434161234567890.<o:p></o:p></p><p class=MsoNormal>Kind regards,<br>Mark<br><a href="mailto:' + SELLER + '">' + SELLER + '</a><o:p></o:p></p>')),
("en21", None, "Delivery slot", "", '<div dir="ltr">Hi Ann, the courier comes <a href="x-apple-data-detectors://0" dir="ltr" x-apple-data-detectors="true" x-apple-data-detectors-type="calendar-event" x-apple-data-detectors-result="0">Tuesday 10.30-12.00</a>. Thanks!</div>'),
("en22", None, "Order shipped", "Your order", None),  # placeholder replaced below
("en23", None, "Re: invoice", "Hi Ann,\n2x cushion @12.50 = 25.00, shipping 4.90, total €29.90. invoice.pdf attached.\nJo", None),
("en24", None, "Delay", "Hi Ann,\nthe workshop was closed for the holiday.So the order ships Monday. Sorry!\nJo", None),
("en25", None, "Re: Return", "Hi Ann,\nno problem.No need to send it back, I'll refund you today.\nJo", None),
("en26", None, "Re: Assembly", "Hi Ann,\nscrew B (M6 x 30) goes into hole 4.Do not overtighten.\nJo", None),
("en27", None, "Re: Question", "Hi Ann,\nthe chair seat is 45cm high.As you asked, I measured it twice.\nJo", None),
("en28", None, "Re: Lamp", "Hi Ann,\nthe rating plate on the lamp says 220-240V, 40W max. You can use an E27 bulb.\nJo", None),
# ---------------- Spanish
("es01", None, "Tu pedido", "Hola Ana:\ntu compra ya está en camino con Correos Express, nº de seguimiento 3230012345678.\nUn saludo,\nPilar", None),
("es02", None, "Entrega", "Hola Ana:\nel repartidor pasará mañana a las 9 en punto me dice la agencia. Si no está, deja aviso.\nSaludos,\nPilar", None),
("es03", None, "Reembolso", "Hola Ana:\nle he hecho el reembolso por el retraso; gracias por su opinión sobre el embalaje.\nAtte.,\nSr. García", None),
("es04", None, "Descuento aplicado", "Hola Ana:\nle he aplicado un descuento por el retraso, en mi opinión es lo justo.\nSaludos", None),
("es05", None, "Envío", "Hola Ana:\nel paquete ha salido hoy.Es un paquete de ca. 3 kg, 0,5m x 0,4m.\nGracias.Saludos,\nLuis", None),
("es06", None, "Re: Guirnalda", "Hola Ana:\nla guirnalda de cinco estrellas mide 1,5 m y lleva pilas AA (no incluidas).\nUn saludo", None),
("es07", None, "Dirección", "Estimada Sra. López:\nconfirmo la dirección: Avda. de la Constitución 12, 3º Izq., C.P. 41001 Sevilla. Entrega 10.30-12.00.\nAtentamente,\nD. Luis Pérez", None),
("es08", None, "Re: Talla", "Hola Ana,\nla talla M le irá bien.\n\nEl lun, 3 jun 2026 a las 10:15, Ana (<" + BA + ">) escribió:\n> ¿Me irá bien la M? Mido 1,65 m.\n", None),
("es09", None, "Su pedido", "", gmail('Hola Ana,<br>su pedido (nº 77-310, 49,90 €) sale hoy. Adjunto factura.pdf 📄<br>Saludos,<br>Pilar', 'Hola, ¿cuándo sale mi pedido?')),
("es10", None, "Factura", "", outlook('<p class=MsoNormal>Estimada Ana:<o:p></o:p></p><p class=MsoNormal>le adjunto la factura (factura_2026.pdf) y una foto.jpeg del embalaje.<o:p></o:p></p><p class=MsoNormal>Atentamente,<br>Pilar<o:p></o:p></p>')),
("es11", None, "Retraso", "Hola Ana:\nno ha llegado aún?Lo siento mucho.De momento el seguimiento indica que está en Madrid.\nSaludos", None),
("es12", None, "Devolución", "Hola Ana:\nsin problema.Se lo cambio por la talla L. Mándelo a c/o Almacén Sur, C/ Mayor 5.\nSaludos", None),
# ---------------- Italian
("it01", None, "Spedizione", "Gent.mo Sig. Rossi,\nil suo ordine n. 88120 è partito oggi con BRT, tracking 0501234567890.\nCordiali saluti,\nGiulia", None),
("it02", None, "Conferma indirizzo", "Gent.ma Sig.ra Bianchi,\nconfermo la consegna in Via Roma 5, c/o Studio Verdi, martedì 10.30-12.00.\nCordiali saluti", None),
("it03", None, "Rimborso", "Buongiorno,\nle ho fatto il rimborso per il vaso rotto; l'importo dipende dalla valutazione del corriere (di solito 3-5 giorni).\nSaluti", None),
("it04", None, "Coupon", "Buongiorno,\nil coupon che ha usato al checkout non è stato applicato, le ho rimborsato €3,50.\nSaluti, Giulia", None),
("it05", None, "Misure", "Buongiorno,\nil tavolo misura 1,5m x 0,9m.Ci vogliono 2 persone per montarlo.\nGrazie.Si ricordi di controllare il pacco alla consegna.\nGiulia", None),
("it06", None, "Ritiro", "Buongiorno,\nil corriere passa alle 9 in punto me lo ha confermato stamattina.\nSaluti", None),
("it07", None, "Re: Colore", "Buongiorno,\nil colore è buono, se mi dà un feedback sulla taglia procedo con la spedizione.\nGiulia", None),
("it08", None, "Hotel", "Buongiorno,\nnessun problema, possiamo consegnare all'hotel a 5 stelle dove soggiorna, alla reception c/o Sig. Neri.\nSaluti", None),
("it09", None, "Ordine", "", outlook('<p class=MsoNormal>Gentile Sig.na Verdi,<o:p></o:p></p><p class=MsoNormal>le invio la fattura.pdf e la scansione scan.tiff. Peso ca. 2,5 kg.<o:p></o:p></p><p class=MsoNormal>Cordiali saluti<br>Giulia Bianchi<br>' + SELLER2 + '<o:p></o:p></p>')),
("it10", None, "Re: Spedizione", "", gmail('Buongiorno,<br>spedito oggi!<br>p.s. il codice di tracciamento è 0501234567890.<br>Giulia<br>' + SELLER2, 'Quando spedite?')),
("it11", None, "Re: Taglia", "Buongiorno,\nla M va bene.\n\nIl giorno lun 3 giu 2026 alle ore 10:15 Anna <" + BA + "> ha scritto:\n> La M mi va bene? Grazie\n", None),
("it12", None, "Ordine", "Buongiorno,\nordine ricevuto.Lo spediamo domani, versione iOS 17.2 compatibile.\nGrazie", None),
# ---------------- Indonesian
("id01", None, "Pesanan dikirim", "Halo Kak,\npesanan INV/20260301/MPL/3657 sudah dikirim via JNE, resi JP1234567890. Total Rp 1.250.000 sudah termasuk ongkir IDR 75.000.\nTerima kasih 🙏", None),
("id02", None, "Alamat", "Halo Kak,\nmohon konfirmasi alamat: Jl. Sudirman No. 5, RT.05/RW.02, Kel. Karet, Kec. Setiabudi, Kab. Bogor. Kurir datang jam 9.30.\nSalam", None),
("id03", None, "Desain", "Halo Kak,\nkalau mau ubah desain, review dulu file PDF-nya ya (desain.pdf). Setelah oke kami cetak.\nTerima kasih", None),
("id04", None, "Pengiriman ke hotel", "Halo Kak,\nbisa kami kirim ke hotel bintang 5 tempat Kakak menginap, titip di resepsionis c/o Bapak Budi.\nSalam", None),
("id05", None, "Ongkir", "Halo Kak,\ngratis ongkir untuk pesanan ini, alamat sudah kami review ulang dan sudah benar.\nTerima kasih", None),
("id06", None, "Re: Ukuran", "", gmail('Halo Kak,<br>ukuran L lebar dada 52 cm, panjang 70 cm 😊<br>Salam', 'Kak, ukuran L berapa cm?')),
("id07", None, "Paket", "Halo Kak,\npaket sudah sampai di gudang Jakarta.Ke alamat Kakak besok pagi ya.\nTerima kasih", None),
("id08", None, "Stiker", "Halo Kak,\nstiker bintang lima warna emas stoknya ready, ukuran 1,5cm x 1,5cm.\nTerima kasih", None),
("id09", None, "Faktur", "", outlook('<p class=MsoNormal>Yth. Ibu Sari,<o:p></o:p></p><p class=MsoNormal>terlampir faktur.pdf dan foto.jpeg paket. Jadwal kirim Senin 10.30-12.00.<o:p></o:p></p><p class=MsoNormal>Hormat kami,<br>PT. Maju Jaya<o:p></o:p></p>')),
("id10", None, "Refund", "Halo Kak,\nrefund Rp 150.000 sudah kami proses untuk pesanan yang rusak, rating kurir juga sudah kami laporkan.\nMohon maaf 🙏", None),
("id11", None, "Re: Warna", "Halo Kak,\nwarna navy ready.\n\nPada tanggal Sen, 3 Jun 2026, Sari <" + BA + "> menulis:\n> Kak, warna navy ada?\n", None),
("id12", None, "Pesanan", "Halo Kak,\npesanan sudah kami packing ya.Besok dikirim.\nTerima kasih", None),
]

# Cross-boundary: subject + body joined
ORDINARY += [
("en29", None, "Re: Your order", "Now that it has shipped, you should get it by Friday.\nJo", None),
("en30", None, "Refund issued for order 55812", "Hi Jenny,\nthank you for your feedback, and sorry again.\nPriya", None),
("en31", None, "Re: Mug", "Hi Ann,\ncall me old-fashioned but I wrap every mug twice.\nJo", None),
("en32", None, "Re: Mug", "Hi Ann,\nthanks for getting back to me.Talk soon,\nJo", None),
("en33", None, "Re: Phone", "Hi Ann,\nyes you can call the courier on the number printed on the label: +44 20 7946 0000.\nJo", None),
("en34", None, "Delivery", "", '<div dir="ltr">Hi Ann, if the driver can\'t find you, call him on <a href="tel:+442079460000">+44 20 7946 0000</a>.</div>'),
]
ORDINARY = [c for c in ORDINARY if c[0] != "en22"]

# ---------------- evasive violations (expected rule)
EVASIVE = [
("v01", "links", "Photos", "More photos on myshop . com", None),
("v02", "links", "Photos", "More photos on m y s h o p . c o m", None),
("v03", "links", "Photos", "More photos on myshop\uff0ecom", None),
("v04", "links", "Photos", "More photos on myshop\u3002com", None),
("v05", "links", "Map", "", '<p>Our showroom:</p><map name="m"><area shape="rect" coords="0,0,10,10" href="https://myshop.example.com/"></map><img src="cid:map.png" usemap="#m">'),
("v06", "promotion", "Offer", "Use\ncode SAVE10 on your next order", None),
("v07", "promotion", "Offer", "Please visit our sto\u00adre for more colours", None),
("v08", "promotion", "Offer", "Please visit our sto\u200bre for more colours", None),
("v09", "review", "Thanks", "I'll refund the shipping once your review is up.", None),
("v10", "review", "Thanks", "If you're happy, a quick rating with all the stars would help our small shop a lot ⭐⭐⭐⭐⭐", None),
("v11", "review", "Thanks", "Jangan lupa kasih bintang penuh ya kak, nanti dapat voucher 🙏", None),
("v12", "links", "Tienda", "Más modelos en muñecas.es", None),
("v13", "contact", "Contact", "Write to me on shophelp\uff20gmail.com", None),
("v14", "links", "Photos", "Photos at myshop-dot-com", None),
("v15", "links", "Photos", "", '<p>Thanks!</p><img srcset="https://tracker.example.com/p.gif 1x" alt="">'),
("v16", "links", "Photos", "", '<div style="background-image:url(https://tracker.example.com/p.gif)">Thanks!</div>'),
("v17", "links", "Photos", "", '<svg><a xlink:href="https://myshop.example.com/"><text>our page</text></a></svg>'),
("v18", "promotion", "Offer", "Enjoy 10 percent off your next order with SAVE10", None),
("v19", "links", "Photos", "More photos on myshоp.com", None),  # cyrillic o
("v20", "contact", "Contact", "My gmail is lindacrafts88, write there for faster answers", None),
("v21", "links", "Photos", "Short link: bit . ly / 3xYz", None),
]
ORDINARY += [
("en35", None, "Re: late parcel", "Hi Ann,\nthanks for your feedback, I've sent a partial refund of $5.00 for the wait.\nPriya", None),
("en36", None, "Re: Pinterest photo", "", gmail('Yes, that is our lamp, it ships Monday.<br>Jo', 'I saw this lamp on www.pinterest.com, is it yours?')),
("en37", None, "Re: Thank you", "", gmail('Thank you Ann, glad you like it!<br>Jo', "Arrived today, it's perfect! I'll leave a five star review.")),
("it13", None, "Consegna", "Buongiorno,\nil pacco arriva domani.Il corriere chiama prima.\nSaluti", None),
("es13", None, "Pedido", "Hola Ana:\nsu pedido llega el lunes.La factura.pdf va adjunta.\nSaludos", None),
]
EVASIVE += [
("v22", "review", "Thanks", "Would you rate us 10/10? It helps a small shop like ours.", None),
("v23", "promotion", "Offer", "Enter SAVE10 at checkout next time for a nice saving.", None),
("v24", "review", "Thanks", "A 5⭐ review would make our day!", None),
]
