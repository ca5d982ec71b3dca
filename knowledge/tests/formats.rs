//! Parsers on real files of each format. Fixtures are built in the test (DOCX with the zip
//! writer, PDF with lopdf) or read from the bundled corpus, so nothing binary is committed.

use std::io::Write;

use knowledge::document::Block;
use knowledge::parse::{parse, parse_file, Format};

fn docx(body_xml: &str) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        let o = zip::write::SimpleFileOptions::default();
        z.start_file("[Content_Types].xml", o).expect("start");
        z.write_all(br#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>"#).expect("write");
        z.start_file("word/document.xml", o).expect("start");
        let xml = format!(
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>{body_xml}</w:body></w:document>"#
        );
        z.write_all(xml.as_bytes()).expect("write");
        z.finish().expect("finish");
    }
    buf.into_inner()
}

fn para(text: &str) -> String {
    format!("<w:p><w:r><w:t>{text}</w:t></w:r></w:p>")
}

#[test]
fn docx_headings_paragraphs_tables_and_metadata() {
    let body = [
        r#"<w:p><w:pPr><w:pStyle w:val="Title"/></w:pPr><w:r><w:t>关于做好2026年高校毕业生就业工作的通知</w:t></w:r></w:p>"#.to_string(),
        para("鲁人社字〔2026〕5号"),
        para("一、拓宽就业渠道"),
        r#"<w:p><w:r><w:t xml:space="preserve">（一）扩大企业吸纳。对招用毕业生的企业给予补贴</w:t></w:r><w:r><w:t>&amp;奖励。</w:t></w:r></w:p>"#.to_string(),
        "<w:tbl><w:tr><w:tc>".to_string() + &para("项目") + "</w:tc><w:tc>" + &para("标准") + "</w:tc></w:tr><w:tr><w:tc>" + &para("一次性吸纳就业补贴") + "</w:tc><w:tc>" + &para("每人1500元") + "</w:tc></w:tr></w:tbl>",
        para("山东省人力资源和社会保障厅"),
        para("2026年3月1日"),
    ]
    .concat();
    let d = parse(&docx(&body), Format::Docx, "notice.docx").expect("docx parses");
    assert_eq!(d.metadata.title, "关于做好2026年高校毕业生就业工作的通知");
    assert_eq!(d.metadata.doc_number, "鲁人社字〔2026〕5号");
    assert_eq!(d.metadata.date.as_deref(), Some("2026-03-01"));
    assert_eq!(d.metadata.issuer, "山东省人力资源和社会保障厅");
    assert_eq!(d.metadata.region, "");
    assert!(d.blocks.contains(&Block::Paragraph(
        "（一）扩大企业吸纳。对招用毕业生的企业给予补贴&奖励。".into()
    )));
    assert!(d.blocks.contains(&Block::Table {
        header: vec!["项目".into(), "标准".into()],
        rows: vec![vec!["一次性吸纳就业补贴".into(), "每人1500元".into()]]
    }));
}

#[test]
fn text_pdf_is_read() {
    use lopdf::content::{Content, Operation};
    use lopdf::{dictionary, Document, Object, Stream};
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(
        dictionary! { "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica" },
    );
    let resources_id = doc.add_object(dictionary! { "Font" => dictionary! { "F1" => font_id } });
    let lines = [
        "Employment Promotion Notice",
        "Article 1 Public employment services are free of charge.",
        "Article 2 Graduates may apply for job search subsidies.",
    ];
    let mut ops = vec![
        Operation::new("BT", vec![]),
        Operation::new("Tf", vec!["F1".into(), 12.into()]),
        Operation::new("Td", vec![50.into(), 750.into()]),
        Operation::new("TL", vec![30.into()]),
    ];
    for l in lines {
        ops.push(Operation::new("Tj", vec![Object::string_literal(l)]));
        ops.push(Operation::new("T*", vec![]));
    }
    ops.push(Operation::new("ET", vec![]));
    let content = Content { operations: ops };
    let content_id = doc.add_object(Stream::new(
        dictionary! {},
        content.encode().expect("encode"),
    ));
    let page_id = doc.add_object(
        dictionary! { "Type" => "Page", "Parent" => pages_id, "Contents" => content_id },
    );
    doc.objects.insert(pages_id, Object::Dictionary(dictionary! { "Type" => "Pages", "Kids" => vec![page_id.into()], "Count" => 1, "Resources" => resources_id, "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()] }));
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    let mut bytes = Vec::new();
    doc.save_to(&mut bytes).expect("save pdf");
    let d = parse(&bytes, Format::Pdf, "notice.pdf").expect("pdf parses");
    let text: String = d
        .blocks
        .iter()
        .map(Block::text)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        text.contains("Public employment services are free of charge."),
        "{text}"
    );
    assert!(text.contains("job search subsidies"), "{text}");
    // Corrupt and truncated PDFs are errors naming the file, not panics.
    let e = parse(&bytes[..bytes.len() / 3], Format::Pdf, "cut.pdf")
        .expect_err("truncated")
        .to_string();
    assert!(e.contains("cut.pdf"), "{e}");
    assert!(parse(b"%PDF-1.4 garbage", Format::Pdf, "junk.pdf").is_err());
}

#[test]
fn bundled_markdown_has_front_matter_metadata() {
    let d = parse_file(
        &std::path::Path::new(knowledge::DATA_DIR).join("policies/sd-2025-leye-shandong.md"),
    )
    .expect("bundled doc");
    assert_eq!(d.metadata.doc_number, "鲁人社发〔2025〕9号");
    assert_eq!(d.metadata.date.as_deref(), Some("2025-08-01"));
    assert_eq!(d.metadata.region, "山东省");
    assert!(d.metadata.topics.contains(&"灵活就业".to_string()));
}

#[test]
fn plain_text_without_front_matter_finds_metadata() {
    let t = "山东省就业促进条例\n\n第一章 总则\n\n第一条 为了促进就业，制定本条例。\n第二条 本条例适用于本省行政区域。\n\n山东省人民代表大会常务委员会\n2016年3月30日\n";
    let d = parse(t.as_bytes(), Format::Text, "tiaoli.txt").expect("text");
    assert_eq!(d.metadata.title, "山东省就业促进条例");
    assert_eq!(d.metadata.region, "山东省");
    assert_eq!(d.metadata.date.as_deref(), Some("2016-03-30"));
    assert_eq!(d.metadata.issuer, "山东省人民代表大会常务委员会");
    assert!(
        d.blocks.contains(&Block::Paragraph(
            "第二条 本条例适用于本省行政区域。".into()
        )),
        "a new article starts a new paragraph: {:?}",
        d.blocks
    );
}

#[test]
fn bad_files_give_typed_errors_naming_the_file() {
    for (bytes, format, name) in [
        (
            &b"PK\x03\x04 not really a zip"[..],
            Format::Docx,
            "broken.docx",
        ),
        (&b"\xff\xfe\x00binary"[..], Format::Text, "binary.txt"),
        (&b"\xff\xfe\x00binary"[..], Format::Markdown, "binary.md"),
        (&b"<html>\xff</html>"[..], Format::Html, "latin1.html"),
        (&b"plain"[..], Format::Pdf, "notpdf.pdf"),
    ] {
        let e = parse(bytes, format, name).expect_err(name);
        assert!(matches!(e, knowledge::Error::Parse { .. }), "{e:?}");
        assert!(e.to_string().contains(name), "{e}");
    }
    let e = parse_file(std::path::Path::new("slides.pptx")).expect_err("unsupported");
    assert!(
        matches!(e, knowledge::Error::Unsupported { .. }) && e.to_string().contains("slides.pptx")
    );
    // A zip without word/document.xml.
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        z.start_file("hello.txt", zip::write::SimpleFileOptions::default())
            .expect("start");
        z.write_all(b"hi").expect("write");
        z.finish().expect("finish");
    }
    let e = parse(&buf.into_inner(), Format::Docx, "nodoc.docx")
        .expect_err("no document.xml")
        .to_string();
    assert!(e.contains("word/document.xml"), "{e}");
}
